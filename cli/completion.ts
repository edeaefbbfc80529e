/**
 * Shell completion for edgectl. The command tree is read from edgectl's own --help, so completion
 * offers exactly the commands, words and flags the parser accepts; the scripts are static (no
 * Node start per TAB) and fall back to file names, which is what -f and --out want.
 */

export interface CompletionTree {
  /** Top-level commands, in help order. */
  readonly commands: readonly string[];
  /** Per command: the words that may follow it (fixed words and choices), and its flags. */
  readonly byCommand: Readonly<
    Record<string, { readonly words: readonly string[]; readonly flags: readonly string[] }>
  >;
}

/** The section of a help text that starts with `title` (up to the blank line after it). */
function helpSection(help: string, title: string): string {
  const at = help.indexOf(`\n${title}\n`);
  if (at < 0) return '';
  const end = help.indexOf('\n\n', at + 1);
  return help.slice(at, end < 0 ? undefined : end);
}

/** The flags a help text lists (long forms and single-letter aliases). */
function helpFlags(help: string): string[] {
  const flags = new Set<string>();
  for (const m of helpSection(help, 'Options:').matchAll(/^ {2}(?:(-[a-zA-Z]), | {4})(--[a-z][\w-]*)/gm)) {
    if (m[1]) flags.add(m[1]);
    flags.add(m[2]!);
  }
  return [...flags];
}

/** The choices of a help text's positionals, e.g. up/down/status for `lab <action>`. */
function helpChoices(help: string): string[] {
  const words: string[] = [];
  for (const m of helpSection(help, 'Positionals:').matchAll(/\[choices: ([^\]]+)\]/g))
    for (const c of m[1]!.matchAll(/"([^"]+)"/g)) words.push(c[1]!);
  return words;
}

/**
 * completionTree reads the commands from the top-level help and each command's words and flags
 * from its own help. `help(args)` returns what `edgectl <args> --help` prints.
 */
export async function completionTree(help: (args: string[]) => Promise<string>): Promise<CompletionTree> {
  const top = await help([]);
  const commands: string[] = [];
  const byCommand: Record<string, { words: string[]; flags: string[] }> = {};
  for (const m of top.matchAll(/^ {2}edgectl ([a-z][\w-]*)((?: [a-z][\w-]*)*)/gm)) {
    const name = m[1]!;
    const fixed = m[2]!.trim().split(' ').filter(Boolean);
    const text = await help([name, ...fixed]);
    // A command with subcommands (inventory init|validate) lists them; their flags count too.
    const subs = [
      ...helpSection(text, 'Commands:').matchAll(new RegExp(`^ {2}edgectl ${name} ([a-z][\\w-]*)`, 'gm')),
    ].map((x) => x[1]!);
    const subTexts = await Promise.all(subs.map((sub) => help([name, sub])));
    const entry = byCommand[name] ?? { words: [], flags: [] };
    if (!byCommand[name]) commands.push(name);
    entry.words = [
      ...new Set([...entry.words, ...fixed, ...subs, ...[text, ...subTexts].flatMap(helpChoices)]),
    ];
    entry.flags = [...new Set([...entry.flags, ...[text, ...subTexts].flatMap(helpFlags)])];
    byCommand[name] = entry;
  }
  return { commands, byCommand };
}

const shellWords = (ws: readonly string[]) => ws.filter((w) => /^[\w.-]+$/.test(w)).join(' ');

/** bashScript: `source <(edgectl completion bash)`, or save it under bash-completion's directory. */
export function bashScript(tree: CompletionTree): string {
  const cases = tree.commands.map((c) => {
    const e = tree.byCommand[c]!;
    return `    ${c}) words="${shellWords(e.words)}"; flags="${shellWords(e.flags)}" ;;`;
  });
  return [
    '# edgectl completion for bash: source <(edgectl completion bash)',
    '_edgectl() {',
    '  local cur="${COMP_WORDS[COMP_CWORD]}" words="" flags=""',
    '  if [ "$COMP_CWORD" -eq 1 ]; then',
    `    COMPREPLY=($(compgen -W "${shellWords(tree.commands)} --help --version" -- "$cur"))`,
    '    return 0',
    '  fi',
    '  case "${COMP_WORDS[1]}" in',
    ...cases,
    '  esac',
    '  case "$cur" in',
    '    -*) COMPREPLY=($(compgen -W "$flags" -- "$cur")) ;;',
    '    *) COMPREPLY=($(compgen -W "$words" -- "$cur")) ;;',
    '  esac',
    '  return 0',
    '}',
    // -o default: when nothing matches (a file argument), complete file names.
    'complete -o default -F _edgectl edgectl',
    '',
  ].join('\n');
}

/** zshScript: the bash function through zsh's bashcompinit, so both shells offer the same words. */
export function zshScript(tree: CompletionTree): string {
  return [
    '#compdef edgectl',
    '# edgectl completion for zsh: source <(edgectl completion zsh)',
    'autoload -U +X bashcompinit && bashcompinit',
    bashScript(tree).split('\n').slice(1).join('\n'),
  ].join('\n');
}

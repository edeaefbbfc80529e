// edgectl-etcd-revision-bump moves a stopped etcd member's revision forward and marks the new
// revision compacted, so that a control plane restored from a replica or a snapshot never hands
// out a resourceVersion an earlier leader may already have handed out (docs/k3s.md "One history").
//
// It does to a data dir what `etcdutl snapshot restore --bump-revision N --mark-compacted` does to
// the data dir it restores, but on any stopped member's data dir and for etcd 3.4 (the lab's
// Debian etcd) as well as later releases: etcd 3.4 has no etcdutl, and a takeover from a learner's
// data dir (--force-new-cluster) is no snapshot restore.
//
// The mvcc layout it relies on (stable since etcd 3.0): the bbolt bucket "key" is keyed by
// revision, 8 bytes big-endian main revision, '_', 8 bytes big-endian sub revision (a deletion
// appends 't'); the bucket "meta" holds "scheduledCompactRev" and "finishedCompactRev" in the same
// 17-byte form. On start, etcd takes its current revision from the newest key in "key", and runs a
// compaction scheduled past the finished one. So one entry at main+N with an empty value raises the
// revision, and scheduling a compaction at it makes etcd compact everything below on start: a
// read or a watch from an older revision then fails with "required revision has been compacted"
// (Kubernetes: 410 Gone, clients relist) instead of answering from a history that diverged.
//
//	edgectl-etcd-revision-bump --data-dir /var/lib/edgectl/etcd --by 1000000000
//
// prints one JSON line {"db":...,"from":R,"to":R+N}; run again before etcd wrote anything, it
// changes nothing and says {"already":true}, so a resumed plan does not bump twice; exit 1 on any error (etcd still running holds
// the file lock: the open times out).
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	keyBucket        = []byte("key")
	metaBucket       = []byte("meta")
	scheduledCompact = []byte("scheduledCompactRev")
	finishedCompact  = []byte("finishedCompactRev")
)

const revBytes = 17

func revision(main int64) []byte {
	b := make([]byte, revBytes)
	binary.BigEndian.PutUint64(b, uint64(main))
	b[8] = '_'
	// sub revision 0: the first (and only) change of that revision.
	return b
}

func mainOf(b []byte) (int64, error) {
	if len(b) < revBytes || b[8] != '_' {
		return 0, fmt.Errorf("%q is not an etcd revision key", b)
	}
	return int64(binary.BigEndian.Uint64(b[:8])), nil
}

type result struct {
	DB   string `json:"db"`
	From int64  `json:"from"`
	To   int64  `json:"to"`
	// Already: the newest revision is this tool's own bump, scheduled for compaction, and nothing
	// was written since: the data dir was bumped before (a plan resumed), so it is left alone.
	Already bool `json:"already,omitempty"`
}

func bump(db string, by int64) (result, error) {
	if _, err := os.Stat(db); err != nil {
		return result{}, fmt.Errorf("no etcd database at %s: %w", db, err)
	}
	// bbolt takes an exclusive flock: a running etcd holds it, so the open times out rather than
	// changing a live member's file.
	b, err := bolt.Open(db, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return result{}, fmt.Errorf("open %s (is etcd still running?): %w", db, err)
	}
	defer b.Close()
	var r result
	r.DB = db
	err = b.Update(func(tx *bolt.Tx) error {
		keys := tx.Bucket(keyBucket)
		meta := tx.Bucket(metaBucket)
		if keys == nil || meta == nil {
			return errors.New("not an etcd v3 database: no key or meta bucket")
		}
		// The newest revision: keys sort by revision (big-endian main first).
		last, lastValue := keys.Cursor().Last()
		if last != nil && len(last) == revBytes && len(lastValue) == 0 && bytes.Equal(meta.Get(scheduledCompact), last) {
			m, err := mainOf(last)
			if err != nil {
				return err
			}
			r.From, r.To, r.Already = m, m, true
			return nil
		}
		if last != nil {
			m, err := mainOf(last)
			if err != nil {
				return err
			}
			r.From = m
		}
		// A compaction already finished or scheduled past the newest key (all of it compacted away)
		// is the revision etcd would start from.
		for _, k := range [][]byte{finishedCompact, scheduledCompact} {
			if v := meta.Get(k); v != nil {
				m, err := mainOf(v)
				if err != nil {
					return err
				}
				r.From = max(r.From, m)
			}
		}
		if r.From > math.MaxInt64-by {
			return fmt.Errorf("revision %d cannot move forward by %d", r.From, by)
		}
		r.To = r.From + by
		// An entry at the new revision whose value is an empty KeyValue: etcd indexes it under the
		// empty key, which no client (Kubernetes keeps everything under /registry) ever reads.
		if err := keys.Put(revision(r.To), []byte{}); err != nil {
			return err
		}
		return meta.Put(scheduledCompact, revision(r.To))
	})
	return r, err
}

func main() {
	dataDir := flag.String("data-dir", "", "the stopped etcd member's data dir (its member/snap/db is changed)")
	by := flag.Int64("by", 0, "how far to move the revision forward (> 0)")
	flag.Parse()
	if *dataDir == "" || *by <= 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: edgectl-etcd-revision-bump --data-dir DIR --by N (N > 0)")
		os.Exit(2)
	}
	r, err := bump(filepath.Join(*dataDir, "member", "snap", "db"), *by)
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgectl-etcd-revision-bump:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}

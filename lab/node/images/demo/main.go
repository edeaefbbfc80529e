// The lab's demo workload: an HTTP server that answers with its pod name and its addresses on the
// site network, so a scenario can see which pod serves and with which site address.
//
// Env: POD_NAME (from the downward API), SITE_INTERFACE (default net1, Multus' first extra
// interface), LISTEN (default :8080).
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

func siteAddresses(name string) []string {
	iface, err := net.InterfaceByName(name)
	if err != nil {
		return nil
	}
	addrs, err := iface.Addrs()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			out = append(out, n.IP.String())
		}
	}
	return out
}

func env(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func main() {
	pod := env("POD_NAME", "unknown")
	site := env("SITE_INTERFACE", "net1")
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("content-type", "text/plain")
		fmt.Fprintf(w, "pod=%s site=%s\n", pod, strings.Join(siteAddresses(site), ","))
	})
	if err := http.ListenAndServe(env("LISTEN", ":8080"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

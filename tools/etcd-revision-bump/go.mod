module edgectl.io/tools/etcd-revision-bump

go 1.24

require go.etcd.io/bbolt v1.3.11

require golang.org/x/sys v0.4.0 // indirect

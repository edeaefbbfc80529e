module edgectl.local/demo

go 1.26

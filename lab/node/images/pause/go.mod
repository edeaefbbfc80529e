module edgectl.local/pause

go 1.26

package topology

//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 -type topo_key -type topo_val -type topo_errs -type topo_rec -type topo_lkey -type topo_live Topology ../../bpf/topology.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror

package l7

//go:generate go run mkheader.go
//go:generate go run mkhpack.go
//go:generate go run mkkafka.go
//go:generate go tool bpf2go -cc ../../bpf/clang.sh -target amd64,arm64 -type l7_key -type l7_val -type l7_errs -type l7_name_key -type l7_edge_key -type l7_edge_val L7 ../../bpf/l7.bpf.c -- -I../../bpf/include -mcpu=v3 -Wall -Werror

#!/bin/sh
# The compiler bpf2go runs (gen.go: -cc). clang's output can depend on the size of its
# environment (the heap's layout orders some BTF types: proc's object differed in a clone run
# with CI=true), so it runs with a fixed one: PWD alone, the same length in every clone under
# `make generate` (its symlink), and no variable of the caller's.
cc=$(command -v clang-19) || { echo "clang-19 not found (make deps installs it)" >&2; exit 1; }
exec env -i PWD="$PWD" "$cc" "$@"

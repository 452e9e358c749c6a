package tcpdrop

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/kpod-project/kpod/internal/bpfload"
)

// ReasonUnknown is the reason the BPF side records on kernels whose kfree_skb has no reason
// (before 5.17): KPOD_REASON_UNKNOWN in bpf/tcpdrop.bpf.c.
const ReasonUnknown = 0xffffffff

// KernelReasonNames reads enum skb_drop_reason from the running kernel's BTF (see
// ReasonNames). A kernel without the enum (before 5.17) gives an empty table.
func KernelReasonNames() (map[uint32]string, error) {
	spec, err := bpfload.KernelSpec()
	if err != nil {
		return nil, fmt.Errorf("tcpdrop: reading kernel BTF for drop reason names: %w", err)
	}
	return ReasonNames(spec)
}

// ReasonNames maps the values of enum skb_drop_reason in spec to metric-friendly names: the
// enumerator in lower case without its SKB_DROP_REASON_ (or SKB_) prefix, so
// SKB_DROP_REASON_NETFILTER_DROP is "netfilter_drop". The markers SKB_DROP_REASON_MAX and
// SKB_DROP_REASON_SUBSYS_MASK are not reasons and are left out.
func ReasonNames(spec *btf.Spec) (map[uint32]string, error) {
	var e *btf.Enum
	err := spec.TypeByName("skb_drop_reason", &e)
	if errors.Is(err, btf.ErrNotFound) {
		return map[uint32]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tcpdrop: enum skb_drop_reason: %w", err)
	}
	return enumReasonNames(e), nil
}

func enumReasonNames(e *btf.Enum) map[uint32]string {
	out := make(map[uint32]string, len(e.Values))
	for _, v := range e.Values {
		if v.Name == "SKB_DROP_REASON_MAX" || v.Name == "SKB_DROP_REASON_SUBSYS_MASK" || v.Value > 0xffffffff {
			continue
		}
		name := v.Name
		switch {
		case strings.HasPrefix(name, "SKB_DROP_REASON_"):
			name = strings.TrimPrefix(name, "SKB_DROP_REASON_")
		case strings.HasPrefix(name, "SKB_"):
			name = strings.TrimPrefix(name, "SKB_")
		}
		out[uint32(v.Value)] = strings.ToLower(name)
	}
	// Each name must stand for one reason, or Collect adds two reasons' counts up under it:
	// a name that is empty ("SKB_"), given to two values (SKB_FOO and
	// SKB_DROP_REASON_FOO) or another value's reason_<v> is left out, and those values are
	// named reason_<v>.
	values := make(map[string]int, len(out))
	for _, n := range out {
		values[n]++
	}
	for v, n := range out {
		if n == "" || values[n] > 1 || otherValuesName(n, v) {
			delete(out, v)
		}
	}
	return out
}

// otherValuesName tells whether n looks like the fallback name of another value than v:
// reason_<x>, x in canonical decimal, x != v (also an x beyond 32 bits, which no value has:
// a reader would still take it for one).
func otherValuesName(n string, v uint32) bool {
	d, ok := strings.CutPrefix(n, "reason_")
	if !ok || d == "" || strings.Trim(d, "0123456789") != "" || len(d) > 1 && d[0] == '0' {
		return false
	}
	return n != ReasonName(nil, v)
}

// ReasonName is the name of drop reason v in names, or "reason_<v>" for a value the table
// does not know (a newer kernel's reason, or a subsystem's reason with the high bits set).
func ReasonName(names map[uint32]string, v uint32) string {
	if v == ReasonUnknown {
		return "unknown"
	}
	if n, ok := names[v]; ok {
		return n
	}
	return "reason_" + strconv.FormatUint(uint64(v), 10)
}

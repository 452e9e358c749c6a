package tcpdrop

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestReasonNamesRule: the mapping rule on a hand-made enum (no kernel needed).
func TestReasonNamesRule(t *testing.T) {
	e := &btf.Enum{Name: "skb_drop_reason", Size: 4, Values: []btf.EnumValue{
		{Name: "SKB_NOT_DROPPED_YET", Value: 0},
		{Name: "SKB_CONSUMED", Value: 1},
		{Name: "SKB_DROP_REASON_NOT_SPECIFIED", Value: 2},
		{Name: "SKB_DROP_REASON_NETFILTER_DROP", Value: 12},
		{Name: "SKB_DROP_REASON_TCP_OLD_DATA", Value: 40},
		{Name: "SKB_DROP_REASON_SKB_CSUM", Value: 75}, // only the first prefix goes
		{Name: "SKB_DROP_REASON_MAX", Value: 128},
		{Name: "SKB_DROP_REASON_SUBSYS_MASK", Value: 0xffff0000},
	}}
	names := enumReasonNames(e)
	for v, want := range map[uint32]string{
		0:          "not_dropped_yet",
		1:          "consumed",
		2:          "not_specified",
		12:         "netfilter_drop",
		40:         "tcp_old_data",
		75:         "skb_csum",
		128:        "reason_128", // a marker, not a reason
		0xffff0000: "reason_4294901760",
		7:          "reason_7", // a value this table does not know
		0x10003:    "reason_65539",
	} {
		if got := ReasonName(names, v); got != want {
			t.Errorf("ReasonName(%d) = %q, want %q", v, got, want)
		}
	}
	if len(names) != 6 {
		t.Errorf("%d names, want 6 (markers left out): %v", len(names), names)
	}
}

// TestReasonNamesKernel: on the running kernel's BTF every drop reason gets its own name,
// derived from the enumerator by the rule, so a value the BPF side reports can always be
// told apart and read (no golden list: whatever this kernel defines).
func TestReasonNamesKernel(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		fakepod.Unmet(t, "no kernel BTF")
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	var e *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &e); errors.Is(err, btf.ErrNotFound) {
		// Before 5.17: no names, and the BPF side records every drop as unknown.
		if names, err := ReasonNames(spec); err != nil || len(names) != 0 {
			t.Errorf("kernel without enum skb_drop_reason: names %v, %v; want none", names, err)
		}
		return
	} else if err != nil {
		t.Fatal(err)
	}
	names, err := ReasonNames(spec)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	var netfilter bool
	for _, v := range e.Values {
		if v.Name == "SKB_DROP_REASON_MAX" || v.Name == "SKB_DROP_REASON_SUBSYS_MASK" {
			continue
		}
		got := ReasonName(names, uint32(v.Value))
		want, ok := strings.CutPrefix(v.Name, "SKB_DROP_REASON_")
		if !ok { // SKB_NOT_DROPPED_YET, SKB_CONSUMED
			want = strings.TrimPrefix(v.Name, "SKB_")
		}
		want = strings.ToLower(want)
		if got != want {
			t.Errorf("%s (%d) is named %q, want %q", v.Name, v.Value, got, want)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%s and %s are both named %q", v.Name, other, got)
		}
		seen[got] = v.Name
		if v.Name == "SKB_DROP_REASON_NETFILTER_DROP" {
			netfilter = got == "netfilter_drop"
		}
	}
	if !netfilter {
		t.Errorf("SKB_DROP_REASON_NETFILTER_DROP is not named netfilter_drop")
	}
	if got := ReasonName(names, 0xfffe); !strings.HasPrefix(got, "reason_") {
		t.Errorf("an unknown value is named %q", got)
	}
	t.Logf("%d drop reasons on this kernel", len(names))
}

func TestStatsAdd(t *testing.T) {
	b := Stats{"x": 2, "y": 4}
	a := Stats{"x": 1}.Add(b)
	if a["x"] != 3 || a["y"] != 4 {
		t.Fatalf("got %v", a)
	}
	var z Stats
	z = z.Add(b)
	if z["y"] != 4 {
		t.Fatalf("adding into a nil Stats: %v", z)
	}
	b["y"] = 100
	if z["y"] != 4 {
		t.Fatal("Add shares the map it adds from")
	}
}

func TestReasonUnknown(t *testing.T) {
	if got := ReasonName(map[uint32]string{2: "not_specified"}, ReasonUnknown); got != "unknown" {
		t.Errorf("ReasonName(ReasonUnknown) = %q, want unknown", got)
	}
}

package tcpdrop

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

var (
	identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelValue = regexp.MustCompile(`^[a-z0-9_]+$`)
	fallbackRe = regexp.MustCompile(`^reason_(0|[1-9][0-9]*)$`)
)

// enumFromText builds enum skb_drop_reason from "NAME=value" lines; lines that are not a C
// identifier and a number are left out (BTF enumerators are identifiers).
func enumFromText(text string) *btf.Enum {
	e := &btf.Enum{Name: "skb_drop_reason", Size: 4}
	for _, line := range strings.Split(text, "\n") {
		n, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		val, err := strconv.ParseUint(v, 10, 64)
		if ok && err == nil && identifier.MatchString(n) {
			e.Values = append(e.Values, btf.EnumValue{Name: n, Value: val})
			if val > 0xffffffff {
				e.Size = 8 // BTF_KIND_ENUM64
			}
		}
	}
	return e
}

func enumText(e *btf.Enum) string {
	var b strings.Builder
	for _, v := range e.Values {
		fmt.Fprintf(&b, "%s=%d\n", v.Name, v.Value)
	}
	return b.String()
}

// ruleName is the documented rule: lower case, without SKB_DROP_REASON_ (or SKB_).
func ruleName(enumerator string) string {
	n, ok := strings.CutPrefix(enumerator, "SKB_DROP_REASON_")
	if !ok {
		n = strings.TrimPrefix(enumerator, "SKB_")
	}
	return strings.ToLower(n)
}

// FuzzReasonNames: the names of drop reasons, read from a BTF enum skb_drop_reason (built
// from the fuzzer's enumerators and written through the BTF encoder, as the kernel's is
// read). Two different drop reasons never get the same name (their counts would be added up
// under one series), including the reason_<n> kpod gives a value the table does not know;
// every name is a lower-case label value; the markers (MAX, SUBSYS_MASK) and values beyond
// 32 bits are not reasons; and an enumerator whose rule name is not ambiguous gets it.
func FuzzReasonNames(f *testing.F) {
	f.Add("SKB_NOT_DROPPED_YET=0\nSKB_CONSUMED=1\nSKB_DROP_REASON_NOT_SPECIFIED=2\nSKB_DROP_REASON_NETFILTER_DROP=12\nSKB_DROP_REASON_MAX=13\nSKB_DROP_REASON_SUBSYS_MASK=4294901760\n")
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err == nil {
		if spec, err := btf.LoadKernelSpec(); err == nil {
			var e *btf.Enum
			if spec.TypeByName("skb_drop_reason", &e) == nil {
				f.Add(enumText(e))
			}
		}
	}
	f.Fuzz(func(t *testing.T, text string) {
		e := enumFromText(text)
		b, err := btf.NewBuilder([]btf.Type{e}, nil)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := b.Spec()
		if err != nil {
			t.Fatal(err)
		}
		names, err := ReasonNames(spec)
		if err != nil {
			t.Fatalf("ReasonNames: %v", err)
		}
		values := map[uint64]int{} // enumerators per value
		derived := map[string]map[uint64]bool{}
		for _, v := range e.Values {
			values[v.Value]++
			if derived[ruleName(v.Name)] == nil {
				derived[ruleName(v.Name)] = map[uint64]bool{}
			}
			derived[ruleName(v.Name)][v.Value] = true
		}
		owner := map[string]uint32{}
		for v, n := range names {
			if values[uint64(v)] == 0 {
				t.Fatalf("%d is named %q but is not in the enum", v, n)
			}
			if !labelValue.MatchString(n) {
				t.Fatalf("%d is named %q, not a lower-case label value", v, n)
			}
			if o, dup := owner[n]; dup {
				t.Fatalf("%d and %d are both named %q", o, v, n)
			}
			owner[n] = v
			if fallbackRe.MatchString(n) && n != "reason_"+strconv.FormatUint(uint64(v), 10) {
				t.Fatalf("%d is named %q, the name of an unknown value", v, n)
			}
		}
		for _, v := range e.Values {
			name, inTable := names[uint32(v.Value)]
			switch {
			case v.Value > 0xffffffff || v.Name == "SKB_DROP_REASON_MAX" || v.Name == "SKB_DROP_REASON_SUBSYS_MASK":
				if inTable && values[v.Value] == 1 {
					t.Fatalf("%s (%d) is named %q; it is not a reason", v.Name, v.Value, name)
				}
			case values[v.Value] == 1 && len(derived[ruleName(v.Name)]) == 1 && labelValue.MatchString(ruleName(v.Name)) && !fallbackRe.MatchString(ruleName(v.Name)):
				if name != ruleName(v.Name) {
					t.Fatalf("%s (%d) is named %q, want %q", v.Name, v.Value, name, ruleName(v.Name))
				}
			}
		}
	})
}

// TestReasonNamesNoEnum: BTF without the enum (kernels before 5.17) gives an empty table,
// not an error.
func TestReasonNamesNoEnum(t *testing.T) {
	b, err := btf.NewBuilder([]btf.Type{&btf.Int{Name: "int", Size: 4}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := b.Spec()
	if err != nil {
		t.Fatal(err)
	}
	names, err := ReasonNames(spec)
	if err != nil || names == nil || len(names) != 0 {
		t.Fatalf("ReasonNames without the enum = %v, %v", names, err)
	}
}

// TestReasonNamesFuzzFindings: enumerators whose names by the rule are empty or shared
// gave two reasons one name ("SKB_=0" was named ""), and Collect added their counts up.
// Such values are named reason_<v>; the others keep their rule names.
func TestReasonNamesFuzzFindings(t *testing.T) {
	names := enumReasonNames(enumFromText("SKB_=0\nSKB_DROP_REASON_FOO=3\nSKB_FOO=4\nSKB_DROP_REASON_REASON_9=5\nSKB_DROP_REASON_REASON_6=6\nSKB_DROP_REASON_TCP_CSUM=7\nSKB_DROP_REASON_=8\nREASON_=10\nSKB_DROP_REASON_REASON_011=12\n"))
	for v, want := range map[uint32]string{0: "reason_0", 3: "reason_3", 4: "reason_4", 5: "reason_5", 6: "reason_6", 7: "tcp_csum", 8: "reason_8", 9: "reason_9",
		10: "reason_", 11: "reason_11", 12: "reason_011"} {
		if got := ReasonName(names, v); got != want {
			t.Errorf("ReasonName(%d) = %q, want %q", v, got, want)
		}
	}
}

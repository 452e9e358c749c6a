package kpodreceiver

import "slices"

var (
	allProfiles       = []string{ProfileMinimal, ProfileStandard, ProfileComprehensive}
	standardUp        = []string{ProfileStandard, ProfileComprehensive}
	comprehensiveOnly = []string{ProfileComprehensive}
)

// catalog is the ordered list of families (family_<name>.go); the README's profile table is
// checked against it.
var catalog = []familyInfo{
	cpuFamily,
	tcpFamily,
	tcpdropFamily,
	oomFamily,
	pagefaultsFamily,
	biolatencyFamily,
	cachestatFamily,
	hardirqsFamily,
	softirqsFamily,
	procFamily,
	syscallFamily,
	diskioFamily,
	ifaceFamily,
	filesystemFamily,
	memoryFamily,
	l7Family,
	topologyFamily, // after l7: reads its object
}

func familyByName(name string) (familyInfo, bool) {
	i := slices.IndexFunc(catalog, func(f familyInfo) bool { return f.name == name })
	if i < 0 {
		return familyInfo{}, false
	}
	return catalog[i], true
}

func familyNames() []string {
	out := make([]string, len(catalog))
	for i, f := range catalog {
		out[i] = f.name
	}
	return out
}

// InProfile says whether profile turns collector on (the benchmarks' configs).
func InProfile(collector, profile string) bool {
	f, ok := familyByName(collector)
	return ok && slices.Contains(f.profiles, profile)
}

// BPFCollectors lists the collectors that load BPF programs (diskio only on hosts without a
// v2 io controller), in catalog order; the benchmarks measure each of them.
func BPFCollectors() []string {
	var out []string
	for _, f := range catalog {
		if f.spec != nil {
			out = append(out, f.name)
		}
	}
	return out
}

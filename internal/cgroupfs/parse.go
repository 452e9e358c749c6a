package cgroupfs

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Dev is a block device number as the kernel prints it (major:minor).
type Dev struct{ Major, Minor uint32 }

func (d Dev) String() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// ParseDev parses "major:minor".
func ParseDev(s string) (Dev, error) {
	maj, min, ok := strings.Cut(s, ":")
	if !ok {
		return Dev{}, fmt.Errorf("device %q is not major:minor", s)
	}
	a, err := strconv.ParseUint(maj, 10, 32)
	if err != nil {
		return Dev{}, fmt.Errorf("device %q: %w", s, err)
	}
	b, err := strconv.ParseUint(min, 10, 32)
	if err != nil {
		return Dev{}, fmt.Errorf("device %q: %w", s, err)
	}
	return Dev{uint32(a), uint32(b)}, nil
}

// IOCounters are the cumulative per-device counters of one cgroup.
type IOCounters struct {
	ReadBytes, WriteBytes, Reads, Writes uint64
}

// ReadUint reads a file holding one unsigned number (memory.current, memory.peak, ...).
func ReadUint(path string) (uint64, error) {
	b, err := ReadKept(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", path, s)
	}
	return v, nil
}

// ParseKeyed parses a flat keyed file ("key value" per line: memory.stat, cpu.stat, ...).
// Any malformed line fails the whole file: a half-parsed file would pass for zeros. A key
// given twice is malformed too: either value could be the wrong one.
func ParseKeyed(path string, data []byte) (map[string]uint64, error) {
	return parseKeyed(path, data, nil)
}

// ParseKeys is ParseKeyed for a reader of a few keys (memory.stat has about 40): every line
// is checked as by ParseKeyed, but only keys are kept, so that no map of every key is built
// (a fifth of ParseKeyed's time on a v1 memory.stat). A kept key given twice is malformed.
func ParseKeys(path string, data []byte, keys []string) (map[string]uint64, error) {
	return parseKeyed(path, data, keys)
}

func parseKeyed(path string, data []byte, keys []string) (map[string]uint64, error) {
	text := string(data) // one copy: the keys are its substrings
	var out map[string]uint64
	if keys == nil {
		out = make(map[string]uint64, strings.Count(text, "\n")+1)
	} else {
		out = make(map[string]uint64, len(keys))
	}
	for i := 0; len(text) > 0; i++ {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if !ok || hasSpace(k) {
			return nil, fmt.Errorf("%s:%d: %q is not \"key value\"", path, i+1, line)
		}
		n, err := parseUint(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: value of %q: %w", path, i+1, k, err)
		}
		if keys != nil && !slices.Contains(keys, k) {
			continue
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s:%d: %q given twice", path, i+1, k)
		}
		out[k] = n
	}
	return out, nil
}

// hasSpace reports whether s holds white space (unicode.IsSpace), without decoding ASCII.
func hasSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf:
			return strings.ContainsFunc(s[i:], unicode.IsSpace)
		case c == ' ' || c >= '\t' && c <= '\r':
			return true
		}
	}
	return false
}

// parseUint is strconv.ParseUint(s, 10, 64), digits only: up to 19 of them cannot overflow.
func parseUint(s string) (uint64, error) {
	if len(s) == 0 || len(s) > 19 {
		return strconv.ParseUint(s, 10, 64)
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return strconv.ParseUint(s, 10, 64) // its error
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}

// ParseIOStat parses cgroup v2 io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N".
// A device or counter given twice is malformed: either value could be the wrong one.
func ParseIOStat(path string, data []byte) (map[Dev]IOCounters, error) {
	out := map[Dev]IOCounters{}
	for i, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		dev, err := ParseDev(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		if _, dup := out[dev]; dup {
			return nil, fmt.Errorf("%s:%d: device %s given twice", path, i+1, dev)
		}
		var c IOCounters
		var seen uint8 // bit per counter read
		for _, kv := range fields[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("%s:%d: %q is not key=value", path, i+1, kv)
			}
			var dst *uint64
			var bit uint8
			switch k {
			case "rbytes":
				dst, bit = &c.ReadBytes, 1
			case "wbytes":
				dst, bit = &c.WriteBytes, 2
			case "rios":
				dst, bit = &c.Reads, 4
			case "wios":
				dst, bit = &c.Writes, 8
			default:
				// Other fields (dbytes, and with blkcg_debug_stats the iolatency and iocost
				// ones, some not numbers: "depth=max") are not read.
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", path, i+1, k, err)
			}
			if seen&bit != 0 {
				return nil, fmt.Errorf("%s:%d: %s given twice", path, i+1, k)
			}
			seen, *dst = seen|bit, n
		}
		out[dev] = c
	}
	return out, nil
}

// ParseBlkioThrottle parses a v1 blkio.throttle.io_service_bytes or io_serviced file
// ("MAJ:MIN Read N" ... and a final "Total N") into read and write values per device. The
// kernel prints every operation of every device it lists, so a device without its Read and
// Write lines (a misspelt "Raed" would have read as 0) or with an operation given twice is
// malformed.
func ParseBlkioThrottle(path string, data []byte) (map[Dev][2]uint64, error) {
	out := map[Dev][2]uint64{}
	type devLines struct {
		first     int             // line of the device's first operation
		ops       map[string]bool // operations seen
		readWrite uint8           // bit 1: Read seen, bit 2: Write seen
	}
	var order []Dev
	lines := map[Dev]*devLines{}
	for i, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			continue
		case fields[0] == "Total" && len(fields) == 2:
			if _, err := strconv.ParseUint(fields[1], 10, 64); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
			}
			continue
		case len(fields) != 3:
			return nil, fmt.Errorf("%s:%d: %q is not \"MAJ:MIN Op N\"", path, i+1, line)
		}
		dev, err := ParseDev(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		n, err := strconv.ParseUint(fields[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		dl := lines[dev]
		if dl == nil {
			dl = &devLines{first: i + 1, ops: map[string]bool{}}
			lines[dev] = dl
			order = append(order, dev)
		}
		if dl.ops[fields[1]] {
			return nil, fmt.Errorf("%s:%d: %s %s given twice", path, i+1, dev, fields[1])
		}
		dl.ops[fields[1]] = true
		v := out[dev]
		switch fields[1] {
		case "Read":
			v[0] = n
			dl.readWrite |= 1
		case "Write":
			v[1] = n
			dl.readWrite |= 2
		}
		out[dev] = v
	}
	for _, dev := range order {
		if dl := lines[dev]; dl.readWrite != 3 {
			return nil, fmt.Errorf("%s:%d: device %s has no Read and Write lines", path, dl.first, dev)
		}
	}
	return out, nil
}

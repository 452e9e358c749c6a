package kpodreceiver

import (
	"errors"
	"strings"

	"github.com/go-viper/mapstructure/v2"
)

// keyErrors rewrites an error of decoding the receiver's configuration as one line per bad
// key, each naming the key's whole path the way Validate does ("collectors.cpu.enabled:
// expected type 'bool', got unconvertible type 'string'"). mapstructure nests an error per
// struct level ("'metrics.kpod.proc.forks' decoding failed due to the following error(s):"
// then "'enabled' expected ..."), which the collector prints as it is: the key split over
// several lines, some naming a Go type instead of a key. prefix is the path of what was
// decoded ("" for the receiver's own keys). Errors that are not decoding errors keep their
// text, prefixed.
func keyErrors(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var lines []string
	flattenDecodeError(err, prefix, &lines)
	errs := make([]error, len(lines))
	for i, l := range lines {
		errs[i] = errors.New(l)
	}
	return errors.Join(errs...)
}

// decodingFailed is how mapstructure introduces the errors of one decode.
const decodingFailed = "decoding failed due to the following error(s):"

func flattenDecodeError(err error, path string, out *[]string) {
	var de *mapstructure.DecodeError
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			flattenDecodeError(x, path, out)
		}
		return
	case *mapstructure.DecodeError:
		de = e
	}
	if de != nil {
		name := de.Name()
		inner := de.Unwrap()
		if keys, ok := strings.CutPrefix(inner.Error(), "has invalid keys: "); ok {
			// Unknown keys are named after the struct they are in; at the root of a decode
			// mapstructure names that struct by its Go type, which is the current path.
			if goTypeName(name) {
				name = ""
			}
			for _, k := range strings.Split(keys, ", ") {
				*out = append(*out, joinKey(joinKey(path, keyPath(name)), k)+": unknown key")
			}
			return
		}
		flattenDecodeError(inner, joinKey(path, keyPath(name)), out)
		return
	}
	if w := errors.Unwrap(err); w != nil && strings.HasPrefix(err.Error(), decodingFailed) {
		flattenDecodeError(w, path, out)
		return
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if path == "" {
		*out = append(*out, msg)
		return
	}
	*out = append(*out, path+": "+msg)
}

// keyPath turns mapstructure's name of a value ("collectors[cpu].enabled") into the dotted
// key path of the YAML ("collectors.cpu.enabled").
func keyPath(name string) string {
	name = strings.ReplaceAll(name, "[", ".")
	return strings.ReplaceAll(name, "]", "")
}

func joinKey(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "." + b
}

// goTypeName reports whether mapstructure named a struct by its Go type (this package's
// config or a generated config of internal/metadata) rather than by a key.
func goTypeName(name string) bool {
	return strings.HasPrefix(name, "kpodreceiver.") || strings.HasPrefix(name, "metadata.")
}

package bpfload

import (
	"bytes"
	"encoding/binary"
	"io"
	"reflect"
	"strings"
	"testing"
)

type iterRec struct {
	A uint64
	B uint32
	C uint32
}

// TestIterRecords: whole records are decoded in order; a partial record is an error naming
// the sizes; the reader is closed either way.
func TestIterRecords(t *testing.T) {
	want := []iterRec{{1, 2, 3}, {4, 5, 6}}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, want); err != nil {
		t.Fatal(err)
	}
	rd := &closeCounter{Reader: bytes.NewReader(buf.Bytes())}
	got, err := IterRecords[iterRec](rd)
	if err != nil || !reflect.DeepEqual(got, want) || rd.closed != 1 {
		t.Fatalf("IterRecords = %v, %v (closed %d times); want %v, closed once", got, err, rd.closed, want)
	}
	rd = &closeCounter{Reader: bytes.NewReader(buf.Bytes()[:20])}
	if _, err := IterRecords[iterRec](rd); err == nil || !strings.Contains(err.Error(), "20 bytes, not whole 16-byte records") || rd.closed != 1 {
		t.Fatalf("a partial record: %v (closed %d times); want an error naming 20 and 16 bytes, closed once", err, rd.closed)
	}
}

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

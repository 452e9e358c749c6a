package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 and gRPC answers read before the system call that wrote their request has ended,
// as http-early does for HTTP/1.1: each request's HEADERS and its 32 MiB of DATA are one
// write(2) that blocks until the server, which answers after the HEADERS, reads the DATA,
// which it does only when the client says (on the control connection) that it has read the
// whole answer.
func init() {
	commands["h2-early-server"] = h2EarlyServer
	commands["h2-early-client"] = h2EarlyClient
}

// h2EarlyAnswer is the answer to request i (from 0): gRPC's alternates grpc-status 0 and 5
// in trailers after a 200; HTTP/2's alternates 200 and 404. It returns the header blocks
// and the status the request is counted with.
func h2EarlyAnswer(mode string, i int) ([][]hpack.HeaderField, string) {
	if mode == "grpc" {
		code, status := "0", "ok"
		if i%2 == 1 {
			code, status = "5", "error"
		}
		return [][]hpack.HeaderField{
			{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"}},
			{{Name: "grpc-status", Value: code}},
		}, status
	}
	if i%2 == 1 {
		return [][]hpack.HeaderField{{{Name: ":status", Value: "404"}}}, "4xx"
	}
	return [][]hpack.HeaderField{{{Name: ":status", Value: "200"}}}, "2xx"
}

// h2EarlyFrame is the largest frame the server accepts (SETTINGS_MAX_FRAME_SIZE's maximum).
const h2EarlyFrame = 1<<24 - 1

// h2EarlyMode checks the mode argument.
func h2EarlyMode(mode string) error {
	if mode != "grpc" && mode != "http2" {
		return fmt.Errorf("mode %q: want grpc or http2", mode)
	}
	return nil
}

// h2EarlyServer ADDR MODE: per client, a data connection (HTTP/2 with prior knowledge) and
// then a control connection.
func h2EarlyServer(args []string) error {
	if len(args) != 2 {
		return errors.New("h2-early-server ADDR grpc|http2")
	}
	mode := args[1]
	if err := h2EarlyMode(mode); err != nil {
		return err
	}
	return earlyServe(args[0], func(data, ctl net.Conn, c *counts) error {
		return h2EarlyServe(data, ctl, mode, c)
	})
}

func h2EarlyServe(data, ctl net.Conn, mode string, c *counts) error {
	if _, err := io.ReadFull(data, make([]byte, len(http2.ClientPreface))); err != nil {
		return err
	}
	fr := http2.NewFramer(data, data)
	// Large frames: a request is then a few frames, as a real client's writes are (a write of
	// thousands of frames is more than kpod walks in one call, see the README).
	fr.SetMaxReadFrameSize(h2EarlyFrame)
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: h2EarlyFrame}); err != nil {
		return err
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	var status string
	for i := 0; ; {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					return err
				}
			}
		case *http2.HeadersFrame:
			var blocks [][]hpack.HeaderField
			blocks, status = h2EarlyAnswer(mode, i)
			for k, fields := range blocks {
				hb.Reset()
				for _, h := range fields {
					if err := enc.WriteField(h); err != nil {
						return err
					}
				}
				if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: hb.Bytes(),
					EndHeaders: true, EndStream: k == len(blocks)-1}); err != nil {
					return err
				}
			}
			// The body only once the client has read the answer.
			if _, err := io.ReadFull(ctl, make([]byte, 1)); err != nil {
				return err
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				c.add("POST", status)
				i++
				if _, err := ctl.Write([]byte{'y'}); err != nil {
					return err
				}
			}
		}
	}
}

// h2EarlyClient ADDR MODE N: N POSTs of 32 MiB on one connection, each written by one
// write(2) on one thread while its answer is read on another; prints "partial" if a write
// moved less than the whole request (then the answer was not early). Run with
// GODEBUG=asyncpreemptoff=1: a preemption signal would cut the write short.
func h2EarlyClient(args []string) error {
	if len(args) != 3 {
		return errors.New("h2-early-client ADDR grpc|http2 N")
	}
	mode := args[1]
	if err := h2EarlyMode(mode); err != nil {
		return err
	}
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	fd, ctl, err := earlyDial(args[0])
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	defer ctl.Close()

	var out bytes.Buffer
	w := http2.NewFramer(&out, nil)
	out.WriteString(http2.ClientPreface)
	if err := w.WriteSettings(); err != nil {
		return err
	}
	if _, err := syscall.Write(fd, out.Bytes()); err != nil {
		return err
	}
	r := http2.NewFramer(nil, fdReader(fd))
	r.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	fields := []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "kpod"}, {Name: ":path", Value: "/early"}}
	if mode == "grpc" {
		fields = append(fields[:3], hpack.HeaderField{Name: ":path", Value: "/kpod.Early/Call"},
			hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	}
	chunk := make([]byte, 8<<20) // the server allows frames of up to h2EarlyFrame
	const body = 32 << 20
	var c counts
	for i := 0; i < n; i++ {
		sid := uint32(2*i + 1)
		out.Reset()
		hb.Reset()
		for _, h := range fields {
			if err := enc.WriteField(h); err != nil {
				return err
			}
		}
		if err := w.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
			return err
		}
		for k := 0; k < body/len(chunk); k++ {
			if err := w.WriteData(sid, k == body/len(chunk)-1, chunk); err != nil {
				return err
			}
		}
		done := earlyWrite(fd, out.Bytes())
		status, err := h2EarlyRead(r, sid, mode)
		if err != nil {
			return err
		}
		if err := earlyDone(ctl, done); err != nil {
			return err
		}
		c.add("POST", status)
	}
	c.print()
	return nil
}

// h2EarlyRead reads frames until the answer of stream sid has ended and returns its status
// as counted: grpc-status 0 ok, else error; HTTP/2's :status class.
func h2EarlyRead(r *http2.Framer, sid uint32, mode string) (string, error) {
	status := ""
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return "", fmt.Errorf("reading the answer: %w", err)
		}
		h, ok := f.(*http2.MetaHeadersFrame)
		if !ok || h.StreamID != sid {
			continue
		}
		if mode == "grpc" {
			if g := h.PseudoValue("status"); g != "" && g != "200" {
				return "", fmt.Errorf(":status %s", g)
			}
			for _, fl := range h.RegularFields() {
				if fl.Name == "grpc-status" {
					status = "error"
					if fl.Value == "0" {
						status = "ok"
					}
				}
			}
		} else if s := h.PseudoValue("status"); len(s) == 3 {
			status = s[:1] + "xx"
		}
		if h.StreamEnded() {
			if status == "" {
				return "", fmt.Errorf("stream %d ended without a status", sid)
			}
			return status, nil
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c" //nolint:staticcheck // the one server that takes both prior knowledge and the HTTP/1.1 upgrade
	"golang.org/x/net/http2/hpack"
)

func init() {
	commands["h2-server"] = h2Server
	commands["h2-client"] = h2Client
	commands["h2-junk-server"] = h2JunkServer
	commands["h2-junk-client"] = h2JunkClient
	commands["upgrade-server"] = upgradeServer
	commands["upgrade-client"] = upgradeClient
	commands["h2-edge-server"] = h2EdgeServer
	commands["h2-edge-client"] = h2EdgeClient
	commands["http-peek-client"] = httpPeekClient
}

// h2Routes are the HTTP/2 server's paths and their statuses: static-table ones (200, 404, 500)
// and others that HPACK sends as literals, then as references to the dynamic table (201, 503).
var h2Routes = map[string]int{
	"/ok": http.StatusOK, "/created": http.StatusCreated, "/missing": http.StatusNotFound,
	"/fail": http.StatusInternalServerError, "/unavailable": http.StatusServiceUnavailable,
	"/slow": http.StatusOK, "/big": http.StatusOK,
}

// h2Big is the value of a header sent with /big, in the request and in the response: larger
// than a frame (16 KiB), its header block goes on in a CONTINUATION frame, the value split
// between the two; larger than HPACK's table, it is not inserted.
var h2Big = strings.Repeat("kpod-big-header-", 2000) // 32000 bytes, 23000 Huffman-coded

// h2Server ADDR: an HTTP/2 server in clear text (golang.org/x/net/http2 behind h2c: prior
// knowledge and the HTTP/1.1 upgrade) answering h2Routes; /slow answers after 50 ms, /big
// with the X-Kpod-Big header (and wants it in the request). It counts
// the HTTP/2 requests it served by method and status class (an upgrading request is served
// over HTTP/2: stream 1).
func h2Server(args []string) error {
	if len(args) != 1 {
		return errors.New("h2-server ADDR")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	var c counts
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		code, ok := h2Routes[r.URL.Path]
		if !ok {
			code = http.StatusNotFound
		}
		switch r.URL.Path {
		case "/slow":
			time.Sleep(50 * time.Millisecond)
		case "/big":
			if r.Header.Get("X-Kpod-Big") != h2Big {
				code = http.StatusBadRequest
			}
			w.Header().Set("X-Kpod-Big", h2Big)
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte("kpod\n"))
		status := strconv.Itoa(code/100) + "xx"
		// An upgrading request comes with its HTTP/1.1 headers, and is answered on stream 1.
		upgraded := r.ProtoMajor == 1 && strings.EqualFold(r.Header.Get("Upgrade"), "h2c")
		if r.ProtoMajor != 2 && !upgraded {
			status = r.Proto // not HTTP/2: a count no test expects
		}
		c.add(r.Method, status)
	})
	srv := &http.Server{Handler: h2c.NewHandler(handler, &http2.Server{})}
	go func() { _ = srv.Serve(ln) }()
	serve(&c, func() { _ = srv.Shutdown(context.Background()) })
	return nil
}

// h2Client URL N CONC METHOD:PATH...: CONC goroutines each send N rounds of the METHOD:PATH
// requests over one HTTP/2 connection (prior knowledge: golang.org/x/net/http2's Transport on
// a plain TCP connection), concurrently; a request of /big has the X-Kpod-Big header. Prints the counts by method and status class, per
// method "time <method> <ns>" (the requests' durations as the client measured them: request
// sent to body read) and "conns <n>", the connections it opened.
func h2Client(args []string) error {
	if len(args) < 4 {
		return errors.New("h2-client URL N CONC METHOD:PATH...")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	conc, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	var dials atomic.Int64
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var c counts
	var mu sync.Mutex
	spent := map[string]time.Duration{}
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				for _, mp := range args[3:] {
					method, path, ok := strings.Cut(mp, ":")
					if !ok {
						errs <- fmt.Errorf("%q is not METHOD:PATH", mp)
						return
					}
					var body io.Reader
					if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
						body = strings.NewReader("kpod")
					}
					req, err := http.NewRequest(method, args[0]+path, body)
					if err != nil {
						errs <- err
						return
					}
					if path == "/big" {
						req.Header.Set("X-Kpod-Big", h2Big)
					}
					start := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						errs <- err
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					d := time.Since(start)
					if resp.ProtoMajor != 2 {
						errs <- fmt.Errorf("%s %s: answered in %s", method, path, resp.Proto)
						return
					}
					mu.Lock()
					spent[method] += d
					mu.Unlock()
					c.add(method, strconv.Itoa(resp.StatusCode/100)+"xx")
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	c.print()
	for m, d := range spent {
		fmt.Printf("time %s %d\n", m, d.Nanoseconds())
	}
	fmt.Printf("conns %d\n", dials.Load())
	return nil
}

// h2Junk is what the junk client and server send each other after the client's connection
// preface: a frame header no HTTP/2 peer sends (SETTINGS on stream 1) and bytes that are no
// frame.
var h2Junk = append([]byte{0, 0, 0, 4, 0, 0, 0, 0, 1}, "\xff\xfe\x00kpod\x01junk\r\n"...)

// h2JunkServer ADDR: answers each read with h2Junk, until the client closes.
func h2JunkServer(args []string) error {
	if len(args) != 1 {
		return errors.New("h2-junk-server ADDR")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	var c counts
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := conn.Read(buf); err != nil {
						return
					}
					if _, err := conn.Write(h2Junk); err != nil {
						return
					}
					c.add("junk", "answered")
				}
			}()
		}
	}()
	serve(&c, func() { _ = ln.Close() })
	return nil
}

// h2JunkClient ADDR K: writes the HTTP/2 connection preface and h2Junk in one write, then
// h2Junk K-1 more times, each after the server's answer: K writes and K reads on each end.
func h2JunkClient(args []string) error {
	if len(args) != 2 {
		return errors.New("h2-junk-client ADDR K")
	}
	k, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	conn, err := net.Dial("tcp", args[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	msg := append([]byte(http2.ClientPreface), h2Junk...)
	answer := make([]byte, len(h2Junk))
	for i := 0; i < k; i++ {
		if _, err := conn.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(conn, answer); err != nil {
			return err
		}
		if !bytes.Equal(answer, h2Junk) {
			return fmt.Errorf("answer %q", answer)
		}
		msg = h2Junk
	}
	fmt.Printf("count junk answered %d\n", k)
	return nil
}

// upgradeServer ADDR: answers every request "101 Switching Protocols" to a protocol that is
// not HTTP/2 (Upgrade: kpod-echo), then echoes what the client sends.
func upgradeServer(args []string) error {
	if len(args) != 1 {
		return errors.New("upgrade-server ADDR")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	var c counts
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		c.add(r.Method, "1xx")
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: kpod-echo\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		_, _ = io.Copy(conn, rw)
	})}
	go func() { _ = srv.Serve(ln) }()
	serve(&c, func() { _ = srv.Close() })
	return nil
}

// upgradeClient ADDR N: asks for the upgrade to kpod-echo, then sends N lines and reads their
// echoes on the upgraded connection.
func upgradeClient(args []string) error {
	if len(args) != 2 {
		return errors.New("upgrade-client ADDR N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	conn, err := net.Dial("tcp", args[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /up HTTP/1.1\r\nHost: %s\r\nUpgrade: kpod-echo\r\nConnection: Upgrade\r\n\r\n", args[0]); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	for i := 0; i < n; i++ {
		line := fmt.Sprintf("GET / HTTP/1.1 echo %d\n", i) // an HTTP/1.x start, on purpose
		if _, err := conn.Write([]byte(line)); err != nil {
			return err
		}
		got := make([]byte, len(line))
		if _, err := io.ReadFull(br, got); err != nil {
			return err
		}
	}
	fmt.Println("count GET 1xx 1")
	return nil
}

// The edge cases of HTTP/2 and gRPC that Go's and curl's implementations do not send, with
// hand-made frames and header blocks (golang.org/x/net/http2's Framer writes the frames, the
// server decodes requests with its HPACK decoder): one connection, one stream per case, in
// this order (the dynamic table references depend on it). Each case is what the server does
// with the request of its path, and what kpod must make of it; both programs print that tally,
// "count <protocol>:<method> <status> <n>" ("count http2:lost undecoded <n>": a parse error).
type h2Edge struct {
	path, method string
	grpc         bool
	count        string // protocol:method status
}

var h2Edges = []h2Edge{
	{"/interim", "GET", false, "http2:GET 2xx"},           // 103 (a literal, inserted: #0) then 200
	{"/reset", "GET", false, "http2:GET error"},           // RST_STREAM before any response
	{"/undecoded", "GET", false, "http2:lost undecoded"},  // :status as a dynamic index nothing was inserted at
	{"/push", "GET", false, "http2:GET 2xx"},              // PUSH_PROMISE (inserts /pushed: #1), 204, the pushed stream's 200
	{"/dyn", "GET", false, "http2:GET 5xx"},               // 503 as a literal, inserted: #2
	{"/dyn-again", "GET", false, "http2:GET 5xx"},         // index 62: #2, 503
	{"/dyn-old", "GET", false, "http2:GET 2xx"},           // index 64: #0, 103 (only if the push's insertion was counted), then 200
	{"/padded", "GET", false, "http2:GET 4xx"},            // request HEADERS padded and with a priority; 404
	{"/cont", "DELETE", false, "http2:DELETE 4xx"},        // request and response blocks in HEADERS + CONTINUATION; 400
	{"/other", "PURGE", false, "http2:OTHER 2xx"},         // a method not in the list
	{"/client-cancel", "GET", false, "http2:GET error"},   // the client resets the stream
	{"/grpc-ok", "POST", true, "grpc:POST ok"},            // headers, data, trailers grpc-status 0 (a new name, inserted: #3)
	{"/grpc-ok2", "POST", true, "grpc:POST ok"},           // trailers: index 62, #3
	{"/grpc-err", "POST", true, "grpc:POST error"},        // trailers: name index 62 (#3's), value 2 (inserted: #4)
	{"/grpc-ok-old", "POST", true, "grpc:POST ok"},        // trailers-only: 200 and index 63, #3
	{"/grpc-503", "POST", true, "grpc:POST error"},        // 503 and the end of the stream, no grpc-status
	{"/grpc-notrailers", "POST", true, "grpc:POST error"}, // 200, then DATA ends the stream
}

// hpackLit is a literal field whose name is static index idx (the first byte carries the
// representation and the index) and whose value is s, plain.
func hpackLit(first byte, s string) []byte { return append([]byte{first, byte(len(s))}, s...) }

// h2EdgeServer ADDR: answers the cases of h2Edges, each connection in turn.
func h2EdgeServer(args []string) error {
	if len(args) != 1 {
		return errors.New("h2-edge-server ADDR")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	var c counts
	var mu sync.Mutex
	var failure error
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if err := h2EdgeServe(conn, &c); err != nil && !errors.Is(err, io.EOF) {
					mu.Lock()
					failure = err
					mu.Unlock()
				}
			}()
		}
	}()
	serve(&c, func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		if failure != nil {
			fmt.Println("failure", failure)
		}
	})
	return nil
}

func h2EdgeServe(conn net.Conn, c *counts) error {
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		return err
	}
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(conn, preface); err != nil {
		return err
	}
	byPath := map[string]h2Edge{}
	for _, e := range h2Edges {
		byPath[e.path] = e
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			e, ok := byPath[f.PseudoValue("path")]
			if !ok || f.PseudoValue("method") != e.method {
				return fmt.Errorf("unexpected request %v", f.Fields)
			}
			if err := h2EdgeAnswer(fr, f.StreamID, e.path); err != nil {
				return err
			}
			method, status, _ := strings.Cut(e.count, " ")
			c.add(method, status)
		case *http2.RSTStreamFrame:
			if f.ErrCode != http2.ErrCodeCancel {
				return fmt.Errorf("reset %v", f.ErrCode)
			}
		}
	}
}

func h2EdgeAnswer(fr *http2.Framer, sid uint32, path string) error {
	hdr := func(end bool, block ...byte) error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: block, EndStream: end, EndHeaders: true})
	}
	data := func(end bool) error { return fr.WriteData(sid, end, []byte{0, 0, 0, 0, 0}) }
	grpcStatusNew := append(append([]byte{0x40, 11}, "grpc-status"...), 1, '0') // a new name, inserted
	first := func(err ...error) error { return errors.Join(err...) }
	switch path {
	case "/interim":
		return first(hdr(false, hpackLit(0x48, "103")...), hdr(true, 0x88))
	case "/reset":
		return fr.WriteRSTStream(sid, http2.ErrCodeInternal)
	case "/undecoded":
		return hdr(true, 0xff, 0x10) // index 143
	case "/push":
		promise := append([]byte{0x82}, hpackLit(0x44, "/pushed")...)
		return first(fr.WritePushPromise(http2.PushPromiseParam{StreamID: sid, PromiseID: 2, BlockFragment: promise, EndHeaders: true}),
			hdr(true, 0x89),
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2, BlockFragment: []byte{0x88}, EndStream: true, EndHeaders: true}))
	case "/dyn":
		return hdr(true, hpackLit(0x48, "503")...)
	case "/dyn-again":
		return hdr(true, 0xbe)
	case "/dyn-old":
		return first(hdr(false, 0xc0), hdr(true, 0x88))
	case "/client-cancel":
		return nil
	case "/padded", "/other":
		return hdr(true, map[string]byte{"/padded": 0x8d, "/other": 0x88}[path])
	case "/cont":
		return first(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: []byte{}, EndStream: true}),
			fr.WriteContinuation(sid, true, []byte{0x8c}))
	case "/grpc-ok":
		return first(hdr(false, 0x88), data(false), hdr(true, grpcStatusNew...))
	case "/grpc-ok2":
		return first(hdr(false, 0x88), data(false), hdr(true, 0xbe))
	case "/grpc-err":
		return first(hdr(false, 0x88), hdr(true, 0x7e, 1, '2'))
	case "/grpc-ok-old":
		return hdr(true, 0x88, 0xbf)
	case "/grpc-503":
		return hdr(true, hpackLit(0x08, "503")...)
	case "/grpc-notrailers":
		return first(hdr(false, 0x88), data(true))
	}
	return fmt.Errorf("no case %s", path)
}

// h2EdgeClient ADDR R: R connections, each with the cases of h2Edges in order.
func h2EdgeClient(args []string) error {
	if len(args) != 2 {
		return errors.New("h2-edge-client ADDR R")
	}
	r, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	var c counts
	for i := 0; i < r; i++ {
		if err := h2EdgeConn(args[0], &c); err != nil {
			return err
		}
	}
	c.print()
	return nil
}

func h2EdgeConn(addr string, c *counts) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		return err
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		return err
	}
	grpcCT := append([]byte{0x5f}, hpackLit(0x10, "application/grpc")[1:]...) // inserted: the client's #0
	for k, e := range h2Edges {
		sid := uint32(2*k + 1)
		block := []byte{0x82}
		if e.method == "POST" {
			block[0] = 0x83
		} else if e.method != "GET" {
			block = hpackLit(0x02, e.method)
		}
		block = append(block, 0x86)
		block = append(block, hpackLit(0x04, e.path)...)
		block = append(block, hpackLit(0x01, "kpod")...)
		if e.grpc {
			block = append(block, grpcCT...)
			grpcCT = []byte{0xbe}
		}
		var err error
		switch e.path {
		case "/padded":
			err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: block, EndStream: true, EndHeaders: true,
				PadLength: 7, Priority: http2.PriorityParam{StreamDep: 0, Weight: 42}})
		case "/cont": // the block cut inside the method's value
			err = errors.Join(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: block[:4], EndStream: true}),
				fr.WriteContinuation(sid, true, block[4:]))
		case "/client-cancel":
			err = errors.Join(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: block, EndHeaders: true}),
				fr.WriteRSTStream(sid, http2.ErrCodeCancel))
		default:
			err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: block, EndStream: !e.grpc, EndHeaders: true})
			if err == nil && e.grpc {
				err = fr.WriteData(sid, true, []byte{0, 0, 0, 0, 0})
			}
		}
		if err != nil {
			return err
		}
		// the end of the case: its stream ends (and the pushed one), or is reset
		ends, endsInBlock := 1, false
		if e.path == "/push" {
			ends = 2
		}
		for e.path != "/client-cancel" && ends > 0 {
			f, err := fr.ReadFrame()
			if err != nil {
				return fmt.Errorf("%s: %w", e.path, err)
			}
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				ends--
			case *http2.DataFrame:
				if f.StreamEnded() {
					ends--
				}
			case *http2.HeadersFrame:
				if f.StreamEnded() && f.HeadersEnded() {
					ends--
				}
				endsInBlock = f.StreamEnded() && !f.HeadersEnded()
			case *http2.ContinuationFrame:
				if endsInBlock && f.HeadersEnded() {
					ends--
				}
			}
		}
		method, status, _ := strings.Cut(e.count, " ")
		c.add(method, status)
	}
	return nil
}

// httpPeekClient ADDR N: N HTTP/1.1 GET /ok on one connection, each response looked at with a
// receive that peeks (MSG_PEEK: the bytes stay in the socket, as curl's check that a
// connection it reuses is alive) before it is read; prints its tally.
func httpPeekClient(args []string) error {
	if len(args) != 2 {
		return errors.New("http-peek-client ADDR N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	conn, err := net.Dial("tcp", args[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	var c counts
	for i := 0; i < n; i++ {
		if _, err := conn.Write([]byte("GET /ok HTTP/1.1\r\nHost: kpod\r\n\r\n")); err != nil {
			return err
		}
		peeked, perr := 0, error(nil)
		if err := raw.Read(func(fd uintptr) bool {
			buf := make([]byte, 64)
			peeked, _, perr = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK)
			return perr != syscall.EAGAIN
		}); err != nil {
			return err
		}
		if perr != nil || peeked == 0 {
			return fmt.Errorf("peek: %d bytes, %v", peeked, perr)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.add("GET", strconv.Itoa(resp.StatusCode/100)+"xx")
	}
	c.print()
	return nil
}

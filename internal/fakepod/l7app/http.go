package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func init() {
	commands["http-server"] = httpServer
	commands["http-client"] = func(args []string) error { return httpClient(args, false) }
	commands["http-client-fresh"] = func(args []string) error { return httpClient(args, true) }
}

// httpServer ADDR: /ok answers 200, /missing 404, /fail 500, /slow 200 after 50 ms.
func httpServer(args []string) error {
	if len(args) != 1 {
		return errors.New("http-server ADDR")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	var c counts
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		code := http.StatusOK
		switch r.URL.Path {
		case "/missing":
			code = http.StatusNotFound
		case "/fail":
			code = http.StatusInternalServerError
		case "/slow":
			time.Sleep(50 * time.Millisecond)
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte("kpod\n"))
		c.add(r.Method, strconv.Itoa(code/100)+"xx")
	})}
	go func() { _ = srv.Serve(ln) }()
	serve(&c, func() { _ = srv.Shutdown(context.Background()) })
	return nil
}

// httpClient URL N METHOD:PATH...: N requests of each METHOD:PATH over one keep-alive
// connection, in turn; prints their counts and, per method, "time <method> <ns>": the sum of
// the requests' durations as the client measured them (request written to body read).
// http-client-fresh: the same, each request on a connection of its own.
func httpClient(args []string, fresh bool) error {
	if len(args) < 3 {
		return errors.New("http-client URL N METHOD:PATH...")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableKeepAlives: fresh}}
	var c counts
	spent := map[string]time.Duration{}
	for i := 0; i < n; i++ {
		for _, mp := range args[2:] {
			method, path, ok := strings.Cut(mp, ":")
			if !ok {
				return fmt.Errorf("%q is not METHOD:PATH", mp)
			}
			var body io.Reader
			if method == http.MethodPost || method == http.MethodPut {
				body = strings.NewReader("kpod")
			}
			req, err := http.NewRequest(method, args[0]+path, body)
			if err != nil {
				return err
			}
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			spent[method] += time.Since(start)
			c.add(method, strconv.Itoa(resp.StatusCode/100)+"xx")
		}
	}
	c.print()
	for m, d := range spent {
		fmt.Printf("time %s %d\n", m, d.Nanoseconds())
	}
	return nil
}

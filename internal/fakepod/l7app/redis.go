package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

func init() {
	commands["redis-client"] = redisClient
}

// redisClient ADDR CONNS N COMMAND...: CONNS connections to ADDR one after the other (each a
// new TCP connection: through a Service, each may reach another backend); on each, N rounds of
// the COMMANDs in turn (each a space-separated command line, e.g. "SET kpod:k v"), one request
// and its reply at a time. Prints the counts by method (the command's name, upper case) and
// status: error for an error reply, ok for any other.
func redisClient(args []string) error {
	if len(args) < 4 {
		return errors.New("redis-client ADDR CONNS N COMMAND...")
	}
	conns, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	var cmds [][]string
	for _, c := range args[3:] {
		f := strings.Fields(c)
		if len(f) == 0 {
			return fmt.Errorf("empty command %q", c)
		}
		cmds = append(cmds, f)
	}
	var c counts
	for i := 0; i < conns; i++ {
		conn, err := net.Dial("tcp", args[0])
		if err != nil {
			return err
		}
		r := bufio.NewReader(conn)
		for j := 0; j < n; j++ {
			for _, cmd := range cmds {
				if _, err := conn.Write(respCommand(cmd)); err != nil {
					conn.Close()
					return err
				}
				isErr, err := readReply(r)
				if err != nil {
					conn.Close()
					return fmt.Errorf("%s: %w", cmd[0], err)
				}
				status := "ok"
				if isErr {
					status = "error"
				}
				c.add(strings.ToUpper(cmd[0]), status)
			}
		}
		conn.Close()
	}
	c.print()
	return nil
}

// respCommand encodes a command as a RESP array of bulk strings.
func respCommand(args []string) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	return b
}

// readReply reads one RESP2 reply; isErr reports an error reply ('-').
func readReply(r *bufio.Reader) (isErr bool, err error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return false, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return false, errors.New("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return false, nil
	case '-':
		return true, nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return false, err // $-1: nil
		}
		_, err = io.CopyN(io.Discard, r, int64(n)+2)
		return false, err
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return false, err
		}
		for i := 0; i < n; i++ {
			if _, err := readReply(r); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("unexpected reply %q", line)
}

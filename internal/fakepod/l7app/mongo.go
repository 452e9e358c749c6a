package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/kpod-project/kpod/internal/l7/names"
)

func init() {
	commands["mongo-server"] = mongoServer
	commands["mongo-stats"] = mongoStats
	commands["mongo-client"] = mongoClient
	commands["mongo-garbage"] = mongoGarbage
}

// mongoMethod is kpod's name of a command.
func mongoMethod(cmd string) string {
	for _, m := range names.Methods[names.ProtoMongo] {
		if m == cmd {
			return m
		}
	}
	return names.Other
}

// mongoServer ADDR DIR: FerretDB (embedded, on its SQLite backend in DIR) listening on ADDR.
// Its own statistics are read with mongo-stats.
func mongoServer(args []string) error {
	if len(args) != 2 {
		return errors.New("mongo-server ADDR DIR")
	}
	_, port, err := net.SplitHostPort(args[0])
	if err != nil {
		return err
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: args[0]},
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Handler:   "sqlite",
		SQLiteURL: "file:" + strings.TrimSuffix(args[1], "/") + "/",
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = f.Run(ctx)
		close(done)
	}()
	// Ready once the port listens (seen in /proc/net: connecting would be traffic).
	for !listening(port) {
		time.Sleep(20 * time.Millisecond)
	}
	serve(&counts{}, func() {
		cancel()
		<-done
	})
	return nil
}

// listening reports whether a TCP socket of this network namespace listens on port.
func listening(port string) bool {
	p, err := strconv.Atoi(port)
	if err != nil {
		return false
	}
	hex := fmt.Sprintf(":%04X ", p)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			fs := strings.Fields(l)
			if len(fs) > 3 && strings.HasSuffix(fs[1], hex[:len(hex)-1]) && fs[3] == "0A" {
				return true
			}
		}
	}
	return false
}

// mongoStats ADDR: the server's own statistics (serverStatus's metrics.commands: total and
// failed per command), asked for in one OP_MSG on a new connection without a handshake, so
// that nothing is added to them before they are read (serverStatus counts itself after).
// Prints "count <method> ok|error <n>" with kpod's method names, and "server <command>
// <total> <failed>" as the server names them (its legacy OP_QUERY requests are "unknown").
func mongoStats(args []string) error {
	if len(args) != 1 {
		return errors.New("mongo-stats ADDR")
	}
	c, err := net.DialTimeout("tcp", args[0], 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	doc, err := bson.Marshal(bson.D{{Key: "serverStatus", Value: 1}, {Key: "$db", Value: "admin"}})
	if err != nil {
		return err
	}
	var msg bytes.Buffer
	hdr := make([]byte, 21)
	binary.LittleEndian.PutUint32(hdr[0:], uint32(21+len(doc)))
	binary.LittleEndian.PutUint32(hdr[4:], 1)
	binary.LittleEndian.PutUint32(hdr[12:], 2013) // OP_MSG; flagBits 0, section kind 0
	msg.Write(hdr)
	msg.Write(doc)
	if _, err := c.Write(msg.Bytes()); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return err
	}
	reply := make([]byte, binary.LittleEndian.Uint32(size[:])-4)
	if _, err := io.ReadFull(r, reply); err != nil {
		return err
	}
	if len(reply) < 17 || reply[16] != 0 {
		return errors.New("serverStatus: not an OP_MSG reply with a document")
	}
	res := bson.Raw(reply[17:])
	cmds, ok := res.Lookup("metrics", "commands").DocumentOK()
	if !ok {
		return fmt.Errorf("serverStatus has no metrics.commands: %v", res)
	}
	elems, err := cmds.Elements()
	if err != nil {
		return err
	}
	var cs counts
	for _, e := range elems {
		total, _ := e.Value().Document().Lookup("total").AsInt64OK()
		failed, _ := e.Value().Document().Lookup("failed").AsInt64OK()
		fmt.Printf("server %s %d %d\n", e.Key(), total, failed)
		if e.Key() == "unknown" {
			continue // OP_QUERY: the test names them from the client's count
		}
		for i := int64(0); i < total; i++ {
			st := "ok"
			if i < failed {
				st = "error"
			}
			cs.add(mongoMethod(e.Key()), st)
		}
	}
	cs.print()
	return nil
}

// mongoTally is what a process's MongoDB connections carried, decoded with the driver's
// bson package from the bytes it wrote and read: replies by command and status (the reply
// document's "ok"), and the commands sent in legacy OP_QUERY messages.
type mongoTally struct {
	replies, legacy, bad counts
}

// mongoConn tees a client connection's messages into its tally.
type mongoConn struct {
	net.Conn
	t       *mongoTally
	mu      sync.Mutex
	in, out []byte
	reqs    map[uint32]string // requestID -> command
}

func (c *mongoConn) Write(p []byte) (int, error) {
	c.feed(&c.out, p, true)
	return c.Conn.Write(p)
}

func (c *mongoConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.feed(&c.in, p[:n], false)
	return n, err
}

func (c *mongoConn) feed(buf *[]byte, data []byte, requests bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*buf = append(*buf, data...)
	for len(*buf) >= 16 {
		size := int(binary.LittleEndian.Uint32(*buf))
		if size < 16 {
			c.t.bad.add("message", "short")
			*buf = nil
			return
		}
		if len(*buf) < size {
			return
		}
		m := (*buf)[:size]
		if requests {
			c.request(m)
		} else {
			c.reply(m)
		}
		*buf = (*buf)[size:]
	}
}

// document is the command or reply document of a message: OP_MSG's section of kind 0 (the
// first section, as drivers and servers write them), OP_QUERY's query, OP_REPLY's first.
func document(m []byte) (bson.Raw, bool) {
	op := binary.LittleEndian.Uint32(m[12:])
	body := m[16:]
	switch op {
	case 2013:
		if len(body) < 5 || body[4] != 0 {
			return nil, false
		}
		return bson.Raw(body[5:]), true
	case 2004:
		if len(body) < 4 {
			return nil, false
		}
		i := bytes.IndexByte(body[4:], 0)
		if i < 0 || len(body) < 4+i+1+8 {
			return nil, false
		}
		return bson.Raw(body[4+i+1+8:]), true
	case 1:
		if len(body) < 20 {
			return nil, false
		}
		return bson.Raw(body[20:]), true
	}
	return nil, false
}

func (c *mongoConn) request(m []byte) {
	doc, ok := document(m)
	if !ok {
		c.t.bad.add("request", "undecodable")
		return
	}
	e, err := doc.IndexErr(0)
	if err != nil {
		c.t.bad.add("request", "empty")
		return
	}
	c.reqs[binary.LittleEndian.Uint32(m[4:])] = e.Key()
	if binary.LittleEndian.Uint32(m[12:]) == 2004 {
		c.t.legacy.add(mongoMethod(e.Key()), "")
	}
}

func (c *mongoConn) reply(m []byte) {
	to := binary.LittleEndian.Uint32(m[8:])
	cmd, ok := c.reqs[to]
	if !ok {
		c.t.bad.add("reply", "unrequested")
		return
	}
	delete(c.reqs, to)
	doc, ok := document(m)
	if !ok {
		c.t.bad.add("reply", "undecodable")
		return
	}
	status := "ok"
	v := doc.Lookup("ok")
	if f, ok := v.DoubleOK(); ok && f == 0 {
		status = "error"
	} else if i, ok := v.Int32OK(); ok && i == 0 {
		status = "error"
	} else if i, ok := v.Int64OK(); ok && i == 0 {
		status = "error"
	} else if b, ok := v.BooleanOK(); ok && !b {
		status = "error"
	}
	c.t.replies.add(mongoMethod(cmd), status)
}

type mongoDialer struct{ t *mongoTally }

func (d mongoDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &mongoConn{Conn: c, t: d.t, reqs: map[uint32]string{}}, nil
}

// mongoClient ADDR N: the official driver against ADDR: N inserts, a 10 kB document, a find
// read in batches of 10 (getMore), a find of the large document, update, delete, count,
// aggregate (CountDocuments), distinct, findAndModify, createIndexes, listCollections, ping,
// drop, and two commands that fail: a find with an unknown operator and an unknown command.
// Prints what its connections carried ("count" lines: replies by command and status; "legacy"
// lines: commands sent in OP_QUERY), and the driver's own command monitor's count
// ("monitor <method> <status> <n>": succeeded ok, failed error; handshakes and heartbeats are
// not commands to it).
func mongoClient(args []string) error {
	if len(args) != 2 {
		return errors.New("mongo-client ADDR N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	var t mongoTally
	var mon counts
	monitor := &event.CommandMonitor{
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) { mon.add(mongoMethod(e.CommandName), "ok") },
		Failed:    func(_ context.Context, e *event.CommandFailedEvent) { mon.add(mongoMethod(e.CommandName), "error") },
	}
	// No deadline: the driver would send it as maxTimeMS, which FerretDB refuses on some commands.
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + args[0] + "/").SetDirect(true).
		SetDialer(mongoDialer{&t}).SetMonitor(monitor).SetHeartbeatInterval(time.Hour).SetMaxPoolSize(1).SetConnectTimeout(10 * time.Second).SetServerSelectionTimeout(30 * time.Second))
	if err != nil {
		return err
	}
	coll := client.Database("kpod").Collection("items")
	for i := 0; i < n; i++ {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "n", Value: i}}); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "big"}, {Key: "v", Value: strings.Repeat("m", 10000)}}); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetBatchSize(10))
	if err != nil {
		return fmt.Errorf("find: %w", err)
	}
	got := 0
	for cur.Next(ctx) {
		got++
	}
	if err := cur.Err(); err != nil || got != n+1 {
		return fmt.Errorf("find: %d documents, %v", got, err)
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "big"}}).Err(); err != nil {
		return fmt.Errorf("find one: %w", err)
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: -1}}}}); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if _, err := coll.EstimatedDocumentCount(ctx); err != nil {
		return fmt.Errorf("count: %w", err)
	}
	if _, err := coll.CountDocuments(ctx, bson.D{}); err != nil {
		return fmt.Errorf("aggregate: %w", err)
	}
	if err := coll.Distinct(ctx, "n", bson.D{}).Err(); err != nil {
		return fmt.Errorf("distinct: %w", err)
	}
	if err := coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: 3}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}).Err(); err != nil {
		return fmt.Errorf("findAndModify: %w", err)
	}
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "n", Value: 1}}}); err != nil {
		return fmt.Errorf("createIndexes: %w", err)
	}
	if _, err := client.Database("kpod").ListCollectionNames(ctx, bson.D{}); err != nil {
		return fmt.Errorf("listCollections: %w", err)
	}
	if err := client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	// Failures: ok: 0.
	if _, err := coll.Find(ctx, bson.D{{Key: "n", Value: bson.D{{Key: "$nosuchoperator", Value: 1}}}}); err == nil {
		return errors.New("find with an unknown operator succeeded")
	}
	if err := client.Database("kpod").RunCommand(ctx, bson.D{{Key: "nosuchcommand", Value: 1}}).Err(); err == nil {
		return errors.New("an unknown command succeeded")
	}
	if err := coll.Drop(ctx); err != nil {
		return fmt.Errorf("drop: %w", err)
	}
	if err := client.Disconnect(ctx); err != nil {
		return err
	}
	t.replies.print()
	t.legacy.printAs("legacy")
	t.bad.printAs("undecoded")
	mon.printAs("monitor")
	return nil
}

// mongoPing sends {ping: 1} in an OP_MSG with requestID id on c and reads the reply; it
// returns the reply's "ok" as a status.
func mongoPing(c net.Conn, id uint32) (string, error) {
	doc, err := bson.Marshal(bson.D{{Key: "ping", Value: 1}, {Key: "$db", Value: "admin"}})
	if err != nil {
		return "", err
	}
	hdr := make([]byte, 21)
	binary.LittleEndian.PutUint32(hdr[0:], uint32(21+len(doc)))
	binary.LittleEndian.PutUint32(hdr[4:], id)
	binary.LittleEndian.PutUint32(hdr[12:], 2013) // OP_MSG; flagBits 0, section kind 0
	if _, err := c.Write(append(hdr, doc...)); err != nil {
		return "", err
	}
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return "", err
	}
	reply := make([]byte, binary.LittleEndian.Uint32(size[:])-4)
	if _, err := io.ReadFull(c, reply); err != nil {
		return "", err
	}
	if len(reply) < 17 || binary.LittleEndian.Uint32(reply[4:]) != id || reply[16] != 0 {
		return "", fmt.Errorf("ping: a reply %x that does not answer request %d", reply, id)
	}
	if ok, _ := bson.Raw(reply[17:]).Lookup("ok").AsFloat64OK(); ok == 0 {
		return "error", nil
	}
	return "ok", nil
}

// mongoGarbage ADDR: on one connection to the server at ADDR, a ping and its reply, then a
// message header of an opCode that does not exist (16 bytes, one write); the server closes
// the connection. Then a ping on a second connection. Prints "count ping ok|error <n>" and
// "closed 1" if the server closed the first connection without sending anything after the
// garbage.
func mongoGarbage(args []string) error {
	if len(args) != 1 {
		return errors.New("mongo-garbage ADDR")
	}
	var cs counts
	c, err := net.DialTimeout("tcp", args[0], 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := mongoPing(c, 1)
	if err != nil {
		return err
	}
	cs.add("ping", st)
	garbage := make([]byte, 16)
	binary.LittleEndian.PutUint32(garbage[0:], 16)
	binary.LittleEndian.PutUint32(garbage[4:], 2)
	binary.LittleEndian.PutUint32(garbage[12:], 9999)
	if _, err := c.Write(garbage); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 64)); n == 0 && errors.Is(err, io.EOF) {
		fmt.Println("closed 1")
	} else {
		fmt.Printf("after the garbage: %d bytes, %v\n", n, err)
	}
	c2, err := net.DialTimeout("tcp", args[0], 10*time.Second)
	if err != nil {
		return err
	}
	defer c2.Close()
	if st, err = mongoPing(c2, 3); err != nil {
		return err
	}
	cs.add("ping", st)
	cs.print()
	return nil
}

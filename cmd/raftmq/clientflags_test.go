package main

import (
	"context"
	"flag"
	"net"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/stomp"
)

// TestVhost: --vhost is the CONNECT frame's host header, which RabbitMQ
// reads as its virtual host; without it the client sends localhost.
func TestVhost(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-vhost", "/"}, "/"},
		{nil, "localhost"},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
			f, err := stomp.NewReader(nc, stomp.Limits{}).ReadFrame()
			if err != nil {
				got <- "read: " + err.Error()
				return
			}
			got <- f.Get("host")
			w := stomp.NewWriter(nc)
			reply := &stomp.Frame{Command: stomp.CONNECTED}
			reply.Add("version", "1.2")
			w.WriteFrame(reply)
			w.Flush()
			time.Sleep(time.Second) // until the client is done
		}()
		var sec clientSecurity
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		sec.register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := sec.dial(ctx, "tcp://"+ln.Addr().String())
		cancel()
		if err != nil {
			t.Fatalf("%v: dial: %v", tc.args, err)
		}
		if h := <-got; h != tc.want {
			t.Errorf("%v: host header %q, want %q", tc.args, h, tc.want)
		}
		c.Close()
		ln.Close()
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/raftmq/raftmq/transport/failover"
	"github.com/raftmq/raftmq/transport/stomp"
)

// send and receive are the shell's way to a group: they connect through a
// failover URL, so they find the leader and ride out a failover.

const defaultURL = "failover:(tcp://127.0.0.1:61613)"

// headerFlags collects repeated -header k:v flags.
type headerFlags []stomp.Header

func (h *headerFlags) String() string { return "" }

func (h *headerFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, ":")
	if !ok || k == "" {
		return fmt.Errorf("header %q: want key:value", v)
	}
	*h = append(*h, stomp.Header{Key: k, Value: val})
	return nil
}

// clientLogger reports the failover client's reconnects on stderr, so a
// user sees why a command pauses.
func clientLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func runSend(args []string) error {
	var (
		url, dest  string
		count      int
		size       int
		window     int
		persistent bool
		timeout    time.Duration
		headers    headerFlags
		quiet      bool
		sec        clientSecurity
	)
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	sec.register(fs)
	fs.StringVar(&url, "url", defaultURL, "broker URL: failover:(tcp://h1:61613,tcp://h2:61613,...)?options, or tcp://host:port")
	fs.StringVar(&dest, "dest", "", "destination: /queue/NAME or /topic/NAME (required)")
	fs.IntVar(&count, "count", 1, "how many messages to send (each gets the same body)")
	fs.IntVar(&size, "size", 0, "with no body argument: send a body of this many bytes")
	fs.IntVar(&window, "window", 64, "SENDs in flight without a RECEIPT")
	fs.BoolVar(&persistent, "persistent", true, "persistent messages (stored by the group before the RECEIPT)")
	fs.DurationVar(&timeout, "timeout", time.Minute, "give up if the group has not receipted every message by then (0: never)")
	fs.Var(&headers, "header", "a header key:value to add to every message (repeatable)")
	fs.BoolVar(&quiet, "q", false, "print nothing on success")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: raftmq send [flags] [body | -]\n\n"+
			"Sends messages and waits for the group's RECEIPT for each: a receipted\n"+
			"persistent message is stored on a majority of the group. The body is the\n"+
			"argument, stdin with -, or -size bytes. Unreceipted sends are resent after a\n"+
			"failover with their dedupe-id, so none is stored twice.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if dest == "" {
		return usageError{errors.New("-dest is required")}
	}
	if count < 1 || window < 1 || size < 0 {
		return usageError{errors.New("-count and -window must be at least 1, -size not negative")}
	}
	var body []byte
	switch {
	case fs.NArg() > 1:
		return usageError{fmt.Errorf("one body argument, got %d (quote it)", fs.NArg())}
	case fs.NArg() == 1 && fs.Arg(0) == "-":
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		body = b
	case fs.NArg() == 1:
		body = []byte(fs.Arg(0))
	default:
		body = bytes.Repeat([]byte("x"), size)
	}
	if !persistent {
		headers = append(headers, stomp.Header{Key: "persistent", Value: "false"})
	}

	ctx, stop := signalContext()
	defer stop()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c, err := sec.dial(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close()

	start := time.Now()
	inflight := make(chan *failover.Receipt, window)
	errc := make(chan error, 1)
	// The waiter stops the sender at the first failed receipt.
	failed := make(chan struct{})
	go func() {
		defer close(failed)
		for r := range inflight {
			if err := r.Wait(ctx); err != nil {
				errc <- err
				for range inflight { // let the sender finish
				}
				return
			}
		}
		errc <- nil
	}()
	sent := 0
	var sendErr error
send:
	for ; sent < count; sent++ {
		r, err := c.SendAsync(dest, body, headers...)
		if err != nil {
			sendErr = err
			break
		}
		select {
		case inflight <- r:
		case <-ctx.Done():
			sendErr = ctx.Err()
			break send
		case <-failed:
			break send
		}
	}
	close(inflight)
	if err := <-errc; err != nil {
		return fmt.Errorf("send to %s: %w", dest, err)
	}
	if sendErr != nil || sent < count {
		return fmt.Errorf("sent %d of %d messages to %s: %w", sent, count, dest, errors.Join(sendErr, c.Err()))
	}
	addr := c.Addr()
	if err := c.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect: %w", err)
	}
	if !quiet {
		el := time.Since(start)
		if count == 1 {
			fmt.Printf("sent 1 message to %s (receipted by %s)\n", dest, addr)
		} else {
			fmt.Printf("sent %d messages to %s in %v (%.0f msgs/s), all receipted\n", count, dest, el.Round(time.Millisecond), float64(count)/el.Seconds())
		}
	}
	return nil
}

func runReceive(args []string) error {
	var (
		url, dest   string
		count       int
		ack         string
		timeout     time.Duration
		showHeaders bool
		prefetch    int
		sec         clientSecurity
	)
	fs := flag.NewFlagSet("receive", flag.ContinueOnError)
	sec.register(fs)
	fs.StringVar(&url, "url", defaultURL, "broker URL: failover:(tcp://h1:61613,tcp://h2:61613,...)?options, or tcp://host:port")
	fs.StringVar(&dest, "dest", "", "destination: /queue/NAME or /topic/NAME (required)")
	fs.IntVar(&count, "count", 0, "stop after this many messages (0: until interrupted)")
	fs.StringVar(&ack, "ack", "client-individual", "ack mode: auto, client or client-individual (acked after printing)")
	fs.DurationVar(&timeout, "timeout", 0, "give up when no message arrives for this long (0: wait forever)")
	fs.BoolVar(&showHeaders, "headers", false, "print each message's headers before its body")
	fs.IntVar(&prefetch, "prefetch", 0, "unacknowledged messages the broker may send ahead (0: the broker's default; with -count, at most the count)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: raftmq receive [flags]\n\n"+
			"Prints each message's body on its own line, acking it once printed.\n"+
			"A message flagged redelivered:true may have been delivered before.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if dest == "" {
		return usageError{errors.New("-dest is required")}
	}
	switch ack {
	case "auto", "client", "client-individual":
	default:
		return usageError{fmt.Errorf("-ack %q: want auto, client or client-individual", ack)}
	}
	if count > 0 && (prefetch == 0 || prefetch > count) {
		// Take no more than asked for: the rest stay for other consumers.
		prefetch = count
	}

	ctx, stop := signalContext()
	defer stop()
	c, err := sec.dial(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close()
	var hdrs []stomp.Header
	if prefetch > 0 {
		hdrs = append(hdrs, stomp.Header{Key: "activemq.prefetchSize", Value: strconv.Itoa(prefetch)})
	}
	sub, err := c.Subscribe(ctx, dest, ack, hdrs...)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", dest, err)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	var idle <-chan time.Time
	got := 0
	for count == 0 || got < count {
		if timeout > 0 {
			idle = time.After(timeout)
		}
		select {
		case m, ok := <-sub.C():
			if !ok {
				return fmt.Errorf("subscription ended after %d messages: %w", got, sub.Err())
			}
			if showHeaders {
				for _, h := range m.Headers {
					fmt.Fprintf(out, "%s:%s\n", h.Key, h.Value)
				}
				fmt.Fprintln(out)
			}
			out.Write(m.Body)
			out.WriteByte('\n')
			if err := out.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			if ack != "auto" {
				if err := c.AckReceipt(ctx, m, ""); err != nil && !errors.Is(err, failover.ErrStaleMessage) {
					return fmt.Errorf("ack: %w", err)
				}
			}
			got++
		case <-idle:
			if count > 0 {
				return fmt.Errorf("received %d of %d messages from %s: none for %v", got, count, dest, timeout)
			}
			return nil
		case <-ctx.Done():
			return nil
		}
	}
	return c.Disconnect(ctx)
}

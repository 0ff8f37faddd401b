package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/raftmq/raftmq/node"
)

// runDestinations prints the leader's queues and topics, as ActiveMQ's
// `activemq dstat` does.
func runDestinations(args []string) error {
	a, _, err := parseAdminVerb("destinations", "destinations [-http addr] [-json]", args, true, 0)
	if err != nil {
		return err
	}
	var list node.DestinationList
	if err := a.call(http.MethodGet, "/api/v1/destinations", nil, &list); err != nil {
		return err
	}
	if a.json {
		return printJSON(list)
	}
	fmt.Printf("leader %s, counting since %s\n\n", list.LeaderID, list.Since.Local().Format(time.DateTime))
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tPENDING\tIN FLIGHT\tCONSUMERS\tENQUEUED\tDEQUEUED\tDEAD-LETTERED\tEXPIRED\tOLDEST")
	for _, d := range list.Destinations {
		oldest := "-"
		if d.OldestAgeMs != nil {
			oldest = (time.Duration(*d.OldestAgeMs) * time.Millisecond).Round(time.Second).String()
		}
		consumers := fmt.Sprint(d.Consumers)
		if d.NetworkConsumers > 0 {
			consumers += fmt.Sprintf("+%d net", d.NetworkConsumers)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s\n", d.Name, d.Type, d.Pending, d.InFlight,
			consumers, d.Enqueued, d.Dequeued, d.DeadLettered, d.Expired, oldest)
	}
	return tw.Flush()
}

// runPurge deletes every message of a queue.
func runPurge(args []string) error {
	a, rest, err := parseAdminVerb("purge", "purge [-http addr] QUEUE", args, false, 1)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(rest[0], "/queue/")
	var res node.PurgeResult
	if err := a.call(http.MethodPost, "/api/v1/queues/"+url.PathEscape(name)+"/purge", nil, &res); err != nil {
		return err
	}
	fmt.Printf("purged %d messages from %s\n", res.Purged, res.Queue)
	return nil
}

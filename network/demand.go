package network

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
)

// DemandTopic is where a leader publishes its group's demand: the
// destinations its local consumers read. Bridges subscribe to it on both
// sides. It is under queue.SystemTopicPrefix, so clients cannot send to it.
const DemandTopic = queue.SystemTopicPrefix + "network.demand"

// demandInterval is how often a leader republishes its demand unchanged,
// so a bridge that just subscribed learns it without waiting for a change.
const demandInterval = 500 * time.Millisecond

// Demand is one DemandTopic message.
type Demand struct {
	Group string         `json:"group"`
	Dests []queue.Demand `json:"dests"`
}

// Engine is the leader's delivery engine, as the network uses it.
type Engine interface {
	Demand() []queue.Demand
	DemandChanged() <-chan struct{}
	PublishSystem(dest string, headers []fsm.Header, body []byte) error
}

func decodeDemand(body []byte) (Demand, error) {
	var d Demand
	if err := json.Unmarshal(body, &d); err != nil {
		return Demand{}, fmt.Errorf("demand message: %w", err)
	}
	return d, nil
}

// publishDemand publishes e's demand on every change and every
// demandInterval until ctx ends.
func publishDemand(ctx context.Context, group string, e Engine, log *slog.Logger) {
	tick := time.NewTicker(demandInterval)
	defer tick.Stop()
	for {
		body, err := json.Marshal(Demand{Group: group, Dests: e.Demand()})
		if err == nil {
			err = e.PublishSystem(DemandTopic, []fsm.Header{{Key: "content-type", Value: "application/json"}}, body)
		}
		if err != nil && ctx.Err() == nil {
			log.Debug("publish demand", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-e.DemandChanged():
		case <-tick.C:
		}
	}
}

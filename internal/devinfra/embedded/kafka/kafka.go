// Package kafka runs an embedded Kafka-compatible cluster (franz-go's kfake)
// for `shop dev` and tests. With a data directory, every topic, record and
// committed offset survives a restart: kfake writes its state continuously
// and reloads it on start.
package kafka

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config configures the embedded cluster.
type Config struct {
	Dir    string       // data directory; empty keeps everything in memory
	Addr   string       // listen address on 127.0.0.1; port 0 (the default) picks a free port
	Logger *slog.Logger // optional
}

// Cluster is a running embedded cluster.
type Cluster struct {
	c *kfake.Cluster
}

// Start starts a one-broker cluster. Topics are not created here: the event
// log's topics are created through the Kafka admin API, as on a real
// cluster (see eventlog.EnsureTopics).
func Start(cfg Config) (*Cluster, error) {
	port := 0
	if cfg.Addr != "" {
		host, p, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("kafka address %q: %w", cfg.Addr, err)
		}
		if host != "" && host != "127.0.0.1" && host != "localhost" {
			return nil, fmt.Errorf("kafka address %q: the embedded broker listens on 127.0.0.1 only", cfg.Addr)
		}
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("kafka address %q: %w", cfg.Addr, err)
		}
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.DefaultNumPartitions(6)}
	if cfg.Dir != "" {
		opts = append(opts, kfake.DataDir(cfg.Dir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	if cfg.Logger != nil {
		cfg.Logger.Info("embedded kafka started", "component", "kafka", "brokers", c.ListenAddrs(), "dir", cfg.Dir)
	}
	return &Cluster{c: c}, nil
}

// Brokers are the seed addresses of the cluster.
func (c *Cluster) Brokers() []string { return c.c.ListenAddrs() }

// Close stops the cluster, flushing its state to the data directory.
func (c *Cluster) Close() { c.c.Close() }

// Package deploy holds no code: its test (deploy_test.go) checks the
// deployment files against the code they deploy, without a Docker engine
// or a cluster. It loads docker-compose.yml with the compose-spec loader,
// parses the Dockerfile, the kustomize tree under deploy/k8s, the
// Prometheus configuration and the Grafana dashboard, and compares them
// with app.Components(), schemas.Topics() and the flags of `shop run`:
// every component runs in exactly one service and one Deployment, with the
// SHOP_* variables it needs; every topic and its .dlq is created with its
// partitions and infinite retention; every long-running service has a
// health check; the SEPA caller stays single active; and the dashboard
// shows every metric family the shop exports.
package deploy

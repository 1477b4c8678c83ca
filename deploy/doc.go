// Package deploy holds wahaq's deployment artefacts and the tests that keep
// them honest. It has no runtime code.
//
//   - k8s/: Kubernetes manifests (Deployments for the worker and the API,
//     Services, ConfigMap, Secret placeholders, PodDisruptionBudgets) tied
//     together by kustomization.yaml; namespace-agnostic.
//   - prometheus/: alerting rules (alerts.yml) and an example scrape
//     configuration (prometheus.yml).
//   - grafana/: the wahaq dashboard (import it, pick a Prometheus data source).
//
// The Dockerfile and docker-compose.yml live at the repository root. No
// Docker engine or cluster is needed to test any of this: deploy_test.go loads
// the compose file with compose-go, decodes the manifests strictly into the
// Kubernetes API types, and checks that alerts and dashboard only use metric
// names the worker exports.
package deploy

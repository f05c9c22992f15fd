# vk-flightctl Makefile. `make help` lists the targets.

K8S_VERSION        ?= v1.37.2
CONTROLLER_TOOLS_VERSION ?= v0.23.0
LOCALBIN           ?= $(CURDIR)/bin
K8S_BIN_DIR        ?= $(LOCALBIN)/k8s/$(K8S_VERSION)
CONTROLLER_GEN     ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE_VERSION  ?= v5.8.1
KUSTOMIZE          ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
HELM_VERSION       ?= v3.22.0
HELM               ?= $(LOCALBIN)/helm
# The app's version; the Helm chart's version and appVersion (and so the
# image tag it defaults to) are this. Bump it here, then make helm-chart.
VERSION            ?= 0.1.0
GO                 ?= go
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT      ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# Image the Deployment runs; docker-build/docker-push/deploy use it.
IMG                ?= vk-flightctl-provider:$(VERSION)
CONTAINER_TOOL     ?= docker
# Tests that need a real API server get the binaries hack/ builds.
export KUBEBUILDER_ASSETS ?= $(K8S_BIN_DIR)

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and the ClusterRole from kubebuilder markers.
	$(CONTROLLER_GEN) rbac:roleName=vk-flightctl-provider crd paths="./api/..." paths="./controllers/..." paths="./provider/..." paths="./internal/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: quickstart-manifests
quickstart-manifests: kustomize ## Render config/rbac.yaml and config/deployment.yaml (the quickstart's files) from the kustomize bases.
	$(KUSTOMIZE) build config/quickstart/rbac > config/rbac.yaml
	$(KUSTOMIZE) build config/quickstart/deployment > config/deployment.yaml

.PHONY: helm-chart
helm-chart: kustomize ## Regenerate the Helm chart dist/chart from the kustomize bases (config/default, config/prometheus) with chart version VERSION.
	KUSTOMIZE=$(KUSTOMIZE) VERSION=$(VERSION) hack/helm-chart.sh

.PHONY: helm-lint
helm-lint: helm ## helm lint and helm template dist/chart with the default values and with every switch flipped.
	HELM=$(HELM) hack/helm-lint.sh

.PHONY: verify-generated
verify-generated: kustomize ## Fail when generated files (CRD, RBAC, quickstart files, dist/chart) differ from their sources (also the values table in docs/helm.md), or a kustomize base does not render.
	hack/verify-generated.sh
	for d in config/default config/prometheus config/samples config/quickstart/rbac config/quickstart/deployment; do \
	  $(KUSTOMIZE) build $$d >/dev/null || { echo "kustomize build $$d failed" >&2; exit 1; }; done

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: golangci-lint ## Run golangci-lint with .golangci.yml (part of make test; it must report nothing).
	$(GOLANGCI_LINT) run ./...

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint and apply the fixes it can make.
	$(GOLANGCI_LINT) run --fix ./...

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: test
test: verify-generated vet lint helm-lint k8s-binaries-all kwok ## Run every test: lint, chart lint, unit, contract, fuzz, envtest, end-to-end (quickstart and Helm), reliability and bench in quick mode (what CI runs).
	hack/run-tests.sh

.PHONY: test-unit
test-unit: ## Run the tests that need no API server.
	$(GO) test -race -count=1 ./provider/... ./internal/... ./cmd/... ./test/flightctlsim/...

.PHONY: test-envtest
test-envtest: k8s-binaries ## Run the envtest suites (real kube-apiserver and etcd built by hack/, simulator over HTTP).
	$(GO) test -count=1 ./controllers/... ./provider/node/...

.PHONY: cluster-up
cluster-up: k8s-binaries-all ## Start a local control plane on 127.0.0.1 (kubeconfig: .local/kubeconfig).
	K8S_VERSION=$(K8S_VERSION) hack/local-cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and delete .local/cluster.
	hack/local-cluster.sh down

.PHONY: cluster-status
cluster-status: ## Show the local control plane's health.
	hack/local-cluster.sh status

FLIGHTCTL ?= sim

.PHONY: demo
demo: k8s-binaries-all ## Run the product end to end: local control plane, Flightctl simulator (FLIGHTCTL=real: a real Flightctl v1.2.0 with fake devices), manager, the seven quickstart scenarios (left running).
	hack/demo.sh --flightctl $(FLIGHTCTL)

.PHONY: demo-down
demo-down: ## Stop everything make demo started.
	hack/demo-down.sh

.PHONY: test-real
test-real: k8s-binaries-all ## Contract suite and quickstart scenarios against a real Flightctl v1.2.0 on 127.0.0.1 with fake devices (part of make test; the contract suite runs alongside scenario 5's wait for the server's disconnect detection).
	hack/test-real.sh

.PHONY: test-e2e
test-e2e: k8s-binaries-all helm ## Run the end-to-end suites, quickstart and Helm chart (real local control plane, manager and simulator as processes; one package at a time).
	HELM=$(HELM) $(GO) test -count=1 -p 1 -timeout 30m ./test/e2e/... -ginkgo.no-color -ginkgo.v

.PHONY: test-helm
test-helm: k8s-binaries-all helm ## Install dist/chart into a local control plane with helm, run the manager with the chart's ServiceAccount/RBAC/ConfigMap, get a Ready node, uninstall.
	HELM=$(HELM) $(GO) test -count=1 -timeout 15m ./test/e2e/helm/... -ginkgo.no-color -ginkgo.v

.PHONY: test-reliability
test-reliability: k8s-binaries-all ## Fault and restart tests in full mode (~20 min: Flightctl errors, outages, fleet takeover, manager kills, leader hand-over); RELIABILITY_PHASES=a,b runs some phases.
	RELIABILITY_MODE=full $(GO) test -count=1 ./test/reliability/... -run TestReliability -v -timeout 40m

BENCH_QUICK ?=
BENCH_PPROF ?=

.PHONY: bench
bench: k8s-binaries-all kwok ## vk-flightctl vs KWOK: start latency (x3, medians), rolling update, disconnect, 10k pods/1k devices (BENCH_QUICK=1: small sizes; BENCH_PPROF=1: manager CPU profile). FLIGHTCTL=real: 1,000 fake devices on a real Flightctl v1.2.0, server CPU and bytes/min in steady state. See bench/README.md.
ifeq ($(FLIGHTCTL),real)
	BENCH_QUICK=$(BENCH_QUICK) hack/bench-real.sh
else
	BENCH_QUICK=$(BENCH_QUICK) BENCH_PPROF=$(BENCH_PPROF) $(GO) run ./bench/cmd/vkbench -flightctl sim
endif

.PHONY: real-flightctl-up
real-flightctl-up: ## Start a real Flightctl v1.2.0 on 127.0.0.1 (PostgreSQL, Redis, API, worker, periodic, test OIDC issuer); then eval the output of hack/real-flightctl.sh env.
	hack/real-flightctl.sh up

.PHONY: real-flightctl-down
real-flightctl-down: ## Stop the real Flightctl started by real-flightctl-up (state stays in .local/real-flightctl).
	hack/real-flightctl.sh down

##@ Build

.PHONY: build
build: ## Build the manager and the simulator into bin/.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(LOCALBIN)/vk-flightctl-provider ./cmd/vk-flightctl-provider
	CGO_ENABLED=0 $(GO) build -trimpath -o $(LOCALBIN)/flightctl-sim ./cmd/flightctl-sim

.PHONY: run
run: build ## Run the manager against the cluster in KUBECONFIG (install the CRD first: make install).
	$(LOCALBIN)/vk-flightctl-provider

.PHONY: sim
sim: build ## Run the Flightctl simulator on 127.0.0.1:3443 with its built-in fleet (token: sim-token).
	$(LOCALBIN)/flightctl-sim --listen 127.0.0.1:3443 --token sim-token

.PHONY: docker-build
docker-build: ## Build the manager image IMG with CONTAINER_TOOL (docker or podman; none is needed for anything else).
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the manager image IMG.
	$(CONTAINER_TOOL) push $(IMG)

##@ Deployment

.PHONY: install
install: manifests ## Install the CRD into the cluster in KUBECONFIG.
	kubectl apply -f config/crd/bases

.PHONY: deploy
deploy: kustomize ## Deploy the manager (config/default, namespace vk-flightctl-system) with image IMG to the cluster in KUBECONFIG.
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp -r config "$$tmp/" && \
	  (cd "$$tmp/config/default" && $(KUSTOMIZE) edit set image vk-flightctl-provider=$(IMG)) && \
	  $(KUSTOMIZE) build "$$tmp/config/default" | kubectl apply -f -

.PHONY: undeploy
undeploy: kustomize ## Remove what make deploy applied (the CRD and its FleetBindings too).
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found -f -

.PHONY: uninstall
uninstall: ## Remove the CRD from the cluster in KUBECONFIG.
	kubectl delete --ignore-not-found -f config/crd/bases

##@ Dependencies

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Install kustomize into bin/.
$(KUSTOMIZE):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(LOCALBIN)/kustomize $(KUSTOMIZE)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint into bin/ (built from the Go module proxy).
$(GOLANGCI_LINT):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $(GOLANGCI_LINT)

.PHONY: helm
helm: ## Build helm v3.22.0 from the Go module proxy (cached per user) into bin/.
	HELM_VERSION=$(HELM_VERSION) hack/build-helm.sh

.PHONY: kwok
kwok: ## Build kwok v0.8.0 from the Go module proxy (cached per user) into bin/.
	hack/build-kwok.sh

.PHONY: flightctl-binaries
flightctl-binaries: ## Build flightctl-api/-worker/-periodic/-db-migrate/-agent and the flightctl CLI v1.2.0 from the Go module proxy (cached per user).
	hack/build-flightctl.sh

.PHONY: k8s-binaries
k8s-binaries: ## Build etcd and kube-apiserver from the Go module proxy (cached per user).
	hack/build-k8s-binaries.sh etcd kube-apiserver

.PHONY: k8s-binaries-all
k8s-binaries-all: ## Also build kube-controller-manager, kube-scheduler and kubectl.
	hack/build-k8s-binaries.sh etcd kube-apiserver kube-controller-manager kube-scheduler kubectl

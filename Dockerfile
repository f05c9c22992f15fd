# Multi-stage build of the manager: a static binary on a distroless,
# non-root base. `make build` builds the same binary the same way
# (CGO_ENABLED=0, -trimpath).
FROM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY provider/ provider/
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -o vk-flightctl-provider ./cmd/vk-flightctl-provider

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/vk-flightctl-provider .
USER 65532:65532
ENTRYPOINT ["/vk-flightctl-provider"]

// Command oidc-issuer runs the test OIDC issuer of test/oidcissuer for
// hack/real-flightctl.sh, or mints a token with its key.
//
//	oidc-issuer serve --listen 127.0.0.1:18090 --key FILE [--hold 127.0.0.1:15691]...
//	oidc-issuer mint  --issuer URL --key FILE [--subject admin] [--ttl 4h]
//
// serve listens on loopback only. Each --hold address is bound and kept
// open without ever accepting: Flightctl v1.2.0 processes start gorm's
// Prometheus exporter on ":15691" (all interfaces, not configurable), and
// holding 127.0.0.1:15691 first makes that bind fail harmlessly, so no
// Flightctl process listens beyond loopback. mint prints a token on stdout
// and nothing else, so that scripts can capture it without logging it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vk-flightctl/vk-flightctl/test/oidcissuer"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: oidc-issuer serve|mint [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "mint":
		err = mint(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (want serve or mint)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "oidc-issuer:", err)
		os.Exit(1)
	}
}

// holds collects repeated --hold flags.
type holds []string

func (h *holds) String() string     { return fmt.Sprint(*h) }
func (h *holds) Set(v string) error { *h = append(*h, v); return nil }

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:18090", "loopback address to serve on")
	keyFile := fs.String("key", "", "RSA key file (created when missing)")
	secretFile := fs.String("client-secret-file", "", "file holding the client secret the token endpoint requires")
	ttl := fs.Duration("access-ttl", 15*time.Minute, "lifetime of tokens the token endpoint issues")
	var hold holds
	fs.Var(&hold, "hold", "loopback address to bind and hold (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyFile == "" {
		return errors.New("--key is required")
	}
	for _, a := range append([]string{*listen}, hold...) {
		if err := requireLoopback(a); err != nil {
			return err
		}
	}
	key, err := oidcissuer.LoadOrCreateKey(*keyFile)
	if err != nil {
		return err
	}
	var held []net.Listener
	for _, a := range hold {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("holding %s: %w", a, err)
		}
		held = append(held, l)
	}
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	iss := oidcissuer.New("http://"+ln.Addr().String(), key)
	iss.AccessTTL = *ttl
	if *secretFile != "" {
		raw, err := os.ReadFile(*secretFile)
		if err != nil {
			return err
		}
		// Read again on every token request: replacing the file revokes
		// the old secret at once (the refresh tests of make test-real do).
		last := strings.TrimSpace(string(raw))
		var mu sync.Mutex
		iss.ClientSecretFunc = func() string {
			mu.Lock()
			defer mu.Unlock()
			if raw, err := os.ReadFile(*secretFile); err == nil {
				last = strings.TrimSpace(string(raw))
			}
			return last
		}
	}
	srv := &http.Server{Handler: iss.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	log.Printf("oidc-issuer: issuer %s, holding %v", iss.URL, hold)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func mint(args []string) error {
	fs := flag.NewFlagSet("mint", flag.ContinueOnError)
	issuer := fs.String("issuer", "", "issuer URL (iss), e.g. http://127.0.0.1:18090")
	keyFile := fs.String("key", "", "RSA key file the issuer serves")
	subject := fs.String("subject", "admin", "sub and preferred_username")
	ttl := fs.Duration("ttl", 4*time.Hour, "token lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *issuer == "" || *keyFile == "" {
		return errors.New("--issuer and --key are required")
	}
	key, err := oidcissuer.LoadOrCreateKey(*keyFile)
	if err != nil {
		return err
	}
	tok, err := oidcissuer.New(*issuer, key).Mint(oidcissuer.Claims{Subject: *subject}, *ttl)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

// requireLoopback refuses any address that is not a loopback IP: the
// issuer is test infrastructure and must not be reachable from elsewhere.
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: only loopback addresses are allowed", addr)
	}
	return nil
}

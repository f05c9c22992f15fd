package flightctl

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// exchange is one request/response pair read from a transcript of a real
// Flightctl v1.2.0 server.
type exchange struct {
	Method       string
	Path         string // request path with query, without scheme and host
	RequestBody  []byte
	StatusCode   int
	Header       http.Header
	ResponseBody []byte
}

// loadTranscript reads testdata/<name>. The format is the one the shared
// transcripts use: "=== REQUEST", request line, headers, blank line, body,
// then "=== RESPONSE (status N)", status line, headers, blank line, body.
func loadTranscript(t testing.TB, name string) exchange {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "transcripts", name))
	if err != nil {
		t.Fatalf("read transcript: %v", err)
	}
	reqPart, respPart, ok := bytes.Cut(data, []byte("\n=== RESPONSE"))
	if !ok {
		t.Fatalf("%s: no response section", name)
	}
	var ex exchange

	// Request.
	_, reqPart, _ = bytes.Cut(reqPart, []byte("\n")) // "=== REQUEST (...)"
	reqHead, reqBody, _ := bytes.Cut(reqPart, []byte("\n\n"))
	line, _, _ := bytes.Cut(reqHead, []byte("\n"))
	method, target, _ := strings.Cut(string(line), " ")
	ex.Method = method
	if i := strings.Index(target, "/api/"); i >= 0 {
		target = target[i:]
	}
	ex.Path = target
	ex.RequestBody = bytes.TrimSpace(reqBody)
	if string(ex.RequestBody) == "(empty body)" {
		ex.RequestBody = nil
	}

	// Response.
	statusLine, respPart, _ := bytes.Cut(respPart, []byte("\n"))
	s := strings.TrimSuffix(strings.TrimPrefix(string(statusLine), " (status "), ")")
	ex.StatusCode, err = strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s: bad status line %q", name, statusLine)
	}
	respHead, respBody, _ := bytes.Cut(respPart, []byte("\n\n"))
	ex.Header = http.Header{}
	sc := bufio.NewScanner(bytes.NewReader(respHead))
	first := true
	for sc.Scan() {
		if first { // HTTP/1.1 200 OK
			first = false
			continue
		}
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if ok {
			ex.Header.Add(k, v)
		}
	}
	ex.ResponseBody = bytes.TrimSpace(respBody)
	if string(ex.ResponseBody) == "(empty body)" {
		ex.ResponseBody = nil
	}
	return ex
}

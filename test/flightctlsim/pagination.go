package flightctlsim

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// MaxPageSize is the largest page the real server returns. It is also the
// page size when a request gives no limit or limit=0: the v1.2 server then
// pages at 1000 (with a continue token) rather than returning everything,
// so a client must always follow continue tokens.
const MaxPageSize = 1000

// continueToken is the real server's opaque continue value, reproduced
// byte for byte (base64 of this JSON, fields in this order) so that tokens
// recorded from a real server work against the simulator and vice versa.
// Names holds the sort key of the first item of the next page; Count the
// number of items from there to the end.
type continueToken struct {
	Version int      `json:"Version"`
	Names   []string `json:"Names"`
	Count   int64    `json:"Count"`
}

// encodeContinue makes a continue value.
func encodeContinue(names []string, count int64) string {
	b := mustMarshal(continueToken{Version: 1, Names: names, Count: count})
	return base64.StdEncoding.EncodeToString(b)
}

// listParams are the paging parameters of a list request.
type listParams struct {
	limit int
	cont  *continueToken
}

// parseListParams reads limit and continue, with the real server's errors.
func parseListParams(q url.Values) (listParams, string) {
	p := listParams{limit: MaxPageSize}
	if raw, ok := q["limit"]; ok && len(raw) > 0 {
		n, err := strconv.ParseInt(raw[0], 10, 32)
		if err != nil {
			return p, fmt.Sprintf("API Error: parameter \"limit\" in query has an error: value %s: an invalid integer: %v", raw[0], numErr(err))
		}
		switch {
		case n > MaxPageSize:
			return p, fmt.Sprintf("API Error: parameter \"limit\" in query has an error: number must be at most %d", MaxPageSize)
		case n < 0:
			return p, "API Error: parameter \"limit\" in query has an error: number must be at least 0"
		case n > 0:
			p.limit = int(n)
		}
	}
	if c := q.Get("continue"); c != "" {
		raw, err := base64.StdEncoding.DecodeString(c)
		if err != nil {
			return p, "failed to parse continue parameter: " + err.Error()
		}
		var tok continueToken
		if err := json.Unmarshal(raw, &tok); err != nil {
			return p, "failed to parse continue parameter: " + err.Error()
		}
		if tok.Version != 1 {
			return p, fmt.Sprintf("failed to parse continue parameter: unsupported version %d", tok.Version)
		}
		p.cont = &tok
	}
	return p, ""
}

// numErr unwraps strconv's error to its reason ("invalid syntax").
func numErr(err error) error {
	if ne, ok := errors.AsType[*strconv.NumError](err); ok {
		return ne.Err
	}
	return err
}

// Package logging builds the manager's structured JSON logger. Lines carry
// "level" and "msg" keys like the quickstart shows, and stable keys such as
// fleet, device, pod and node.
package logging

import (
	"io"
	"os"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options configure the logger.
type Options struct {
	// Verbosity enables logr V(n) levels up to n (0 = info only).
	Verbosity int
	// Development switches to human-readable console output.
	Development bool
	// Output defaults to stderr.
	Output io.Writer
}

// New returns a logr.Logger backed by zap, plus the zap logger so callers
// that need a warn level (logr has none) can reach it through Warn.
func New(o Options) (logr.Logger, *zap.Logger) {
	out := o.Output
	if out == nil {
		out = os.Stderr
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	enc := zapcore.NewJSONEncoder(encCfg)
	if o.Development {
		enc = zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	}
	// logr V(n) maps to zap level -n.
	level := zap.NewAtomicLevelAt(zapcore.Level(-o.Verbosity))
	core := zapcore.NewCore(enc, zapcore.AddSync(out), level)
	zl := zap.New(core, zap.AddCaller(), zap.AddCallerSkip(0))
	return zapr.NewLogger(zl), zl
}

// Warn logs at zap's warn level through the zap logger underneath a logr
// logger made by New, keeping the logr logger's name and values. When the
// logger has no zap sink it falls back to Info with level=warn.
func Warn(l logr.Logger, msg string, keysAndValues ...any) {
	if u, ok := l.GetSink().(zapr.Underlier); ok {
		// The underlying logger skips frames for logr's wrappers; this
		// call has one frame less, so the caller is this function's caller.
		u.GetUnderlying().WithOptions(zap.AddCallerSkip(-1)).Sugar().Warnw(msg, keysAndValues...)
		return
	}
	l.Info(msg, append([]any{"severity", "warn"}, keysAndValues...)...)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/nfmirror/nfmirror/internal/config"
	"github.com/nfmirror/nfmirror/internal/control"
	"github.com/nfmirror/nfmirror/internal/sdnotify"
	"github.com/nfmirror/nfmirror/internal/service"
	"github.com/nfmirror/nfmirror/mirror"
	"github.com/nfmirror/nfmirror/nfrules"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // a runtime failure: netlink, sockets, a running instance missing
	exitUsage = 2 // bad input: flags, a rules file with errors; nothing was changed
)

const usage = `nfmirror — a Linux mirror (SPAN) port chosen with nftables syntax.

Usage:
  nfmirror check  [flags] RULES   print the nftables ruleset RULES compiles to; change nothing
  nfmirror apply  [flags] RULES   install RULES and mirror until SIGINT/SIGTERM (SIGHUP reloads)
  nfmirror status [--json]        counters of the running instance
  nfmirror flush                  remove what a killed nfmirror left behind
  nfmirror version

A rules file names nftables hooks and says what to copy where:

  define span = "span0"
  prerouting {                      # also input, forward, output, postrouting
      tcp dport { 80, 443 } mirror to $span
      ip saddr 198.18.0.0/15 icmp type echo-request mirror to $span snaplen 128
      meta mark 0x10 mirror to $span lossless
  }
  ingress "eth0" {                  # every frame on eth0, byte-exact (also egress "DEV")
      ether type arp mirror to $span
  }

"mirror to" copies through NFLOG (best effort: production never waits) or,
with "lossless", through NFQUEUE (every copy, fail-open). Copies leave only
through the destination interface, with ARP off there; the analyzer on the
other side needs promiscuous mode. Errors are printed as FILE:LINE:COL.

Exit status: 0 ok, 1 runtime failure, 2 bad input (nothing was changed).
Run 'nfmirror COMMAND -h' for the flags of a command.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "check":
		return runCheck(args, stdout, stderr)
	case "apply":
		return runApply(ctx, args, stdout, stderr)
	case "status":
		return runStatus(args, stdout, stderr)
	case "flush":
		return runFlush(args, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "nfmirror", version)
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "nfmirror: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// settings are the flags shared by check, apply, status and flush: the
// identity of an instance, so that two setups can be told apart.
type settings struct {
	inst      config.Instance
	fwmark    markFlag
	nflogBase uint
	queueBase uint
}

func (s *settings) register(fs *flag.FlagSet) {
	d := config.Default()
	s.inst = d
	s.fwmark = markFlag{mark: d.Mark, mask: d.MarkMask}
	fs.StringVar(&s.inst.Table, "table", d.Table, "name of the nftables tables nfmirror owns (inet and netdev); names the instance's state, lock and socket files too")
	fs.Var(&s.fwmark, "fwmark", "MARK/MASK carried by every copy; destination i gets MARK|i, and packets with this mark are never mirrored")
	fs.UintVar(&s.nflogBase, "nflog-base", uint(d.NFLOGBase), "first NFLOG group number nfmirror allocates")
	fs.UintVar(&s.queueBase, "queue-base", uint(d.QueueBase), "first NFQUEUE number nfmirror allocates (lossless rules)")
	fs.IntVar(&s.inst.RouteTable, "route-table", d.RouteTable, "routing table of the first destination; destination i uses TABLE+i")
	fs.IntVar(&s.inst.Priority, "rule-priority", d.Priority, "priority of nfmirror's ip rules (before 'main' at 32766)")
	fs.StringVar(&s.inst.StateDir, "state-dir", d.StateDir, "directory (0700) for the state file, lock and control socket, all named after -table")
}

// registerSocket adds -socket, which defaults to TABLE.sock in -state-dir.
func (s *settings) registerSocket(fs *flag.FlagSet, what string) {
	fs.StringVar(&s.inst.Socket, "socket", "", what+" (default: TABLE.sock in -state-dir, "+config.Default().SocketPath()+")")
}

// instance returns the validated identity the flags describe.
func (s *settings) instance() (config.Instance, error) {
	if s.nflogBase > 65000 || s.queueBase > 65000 {
		return config.Instance{}, errors.New("-nflog-base and -queue-base must be at most 65000")
	}
	i := s.inst
	i.Mark, i.MarkMask = s.fwmark.mark, s.fwmark.mask
	i.NFLOGBase, i.QueueBase = uint16(s.nflogBase), uint16(s.queueBase)
	i = i.WithDefaults()
	return i, i.Validate()
}

// markFlag parses "MARK" or "MARK/MASK" in any base strconv accepts.
type markFlag struct{ mark, mask uint32 }

func (m *markFlag) String() string { return fmt.Sprintf("%#x/%#x", m.mark, m.mask) }

func (m *markFlag) Set(s string) error {
	markText, maskText, hasMask := strings.Cut(s, "/")
	mark, err := strconv.ParseUint(markText, 0, 32)
	if err != nil {
		return fmt.Errorf("mark %q: not a 32-bit number", markText)
	}
	mask := uint64(config.DefaultMarkMask)
	if hasMask {
		if mask, err = strconv.ParseUint(maskText, 0, 32); err != nil {
			return fmt.Errorf("mask %q: not a 32-bit number", maskText)
		}
	}
	if mark == 0 || uint32(mark)&uint32(mask) == 0 {
		return errors.New("the mark must have a bit set under the mask, or copies could not be told from other packets")
	}
	if ^uint32(mask)&0xff != 0xff {
		return errors.New("the mask must leave the low 8 bits free: they number the destinations")
	}
	m.mark, m.mask = uint32(mark)&uint32(mask), uint32(mask)
	return nil
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: nfmirror %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and wants exactly nargs positional arguments.
func parseFlags(fs *flag.FlagSet, args []string, nargs int, stdout io.Writer) (code int, ok bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout) // asked-for help goes to stdout, errors to stderr
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() != nargs {
		if nargs == 1 {
			fmt.Fprintln(fs.Output(), "nfmirror: want one rules file")
		} else {
			fmt.Fprintf(fs.Output(), "nfmirror: unexpected argument %q\n", fs.Arg(0))
		}
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	var s settings
	fs := newFlagSet("check", "check [flags] RULES\n\nPrints the nftables ruleset RULES compiles to, in nft syntax (nft -c -f accepts it),\nand the NFLOG groups and queues it would use. Touches nothing.", stderr)
	s.register(fs)
	if code, ok := parseFlags(fs, args, 1, stdout); !ok {
		return code
	}
	inst, err := s.instance()
	if err != nil {
		fmt.Fprintln(stderr, "nfmirror:", err)
		return exitUsage
	}
	plan, err := service.Load(fs.Arg(0), service.CompileOptions(inst, 0), nil)
	if err != nil {
		fmt.Fprint(stderr, nfrules.Describe(err))
		return exitUsage
	}
	fmt.Fprint(stdout, plan.NFT())
	return exitOK
}

func runApply(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		s           settings
		logLevel    slog.Level
		logFormat   string
		dryRun      bool
		reader      string
		qreader     string
		socketGroup string
		metrics     string
	)
	fs := newFlagSet("apply", `apply [flags] RULES

Installs RULES and mirrors until SIGINT or SIGTERM, then removes everything it
added. SIGHUP re-reads RULES and swaps the rules atomically without losing a
copy; a bad file is reported and the running rules stay. A crash (even kill -9)
removes the nftables tables; the next apply, or 'nfmirror flush', removes the
ip rules and routes left behind. Needs CAP_NET_ADMIN and CAP_NET_RAW (root is
not required). Under systemd (Type=notify) it reports READY, RELOADING and
STOPPING.`, stderr)
	s.register(fs)
	s.registerSocket(fs, "control socket that 'nfmirror status' reads")
	fs.IntVar(&s.inst.QueueLen, "queue-len", config.DefaultQueueLen, "copies buffered per channel between the kernel reader and the writer; more are dropped and counted")
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "text (key=value) or json (one object per line, for journald and log shippers)")
	fs.StringVar(&socketGroup, "socket-group", "", "group that may read the control socket too (mode 0660; its directory must let the group in); default: its owner only (0600)")
	fs.StringVar(&metrics, "metrics", "", "serve Prometheus metrics on this address at /metrics, e.g. 127.0.0.1:9772 (off by default)")
	fs.StringVar(&reader, "nflog-reader", "builtin", "NFLOG reader for IP copies: builtin (one recvmsg per batch, no allocation per copy) or go-nflog")
	fs.StringVar(&qreader, "nfqueue-reader", "builtin", "NFQUEUE reader for lossless rules: builtin (recvmmsg of up to 64 packets, one verdict per read) or go-nfqueue")
	fs.BoolVar(&dryRun, "dry-run", false, "check RULES against this machine (destinations must exist), print the ruleset, change nothing")
	if code, ok := parseFlags(fs, args, 1, stdout); !ok {
		return code
	}
	inst, err := s.instance()
	if err != nil {
		fmt.Fprintln(stderr, "nfmirror:", err)
		return exitUsage
	}
	inetReader := mirror.ReaderBuiltin
	switch reader {
	case "builtin":
	case "go-nflog":
		inetReader = mirror.ReaderGoNFLOG
	default:
		fmt.Fprintf(stderr, "nfmirror: -nflog-reader %q: want builtin or go-nflog\n", reader)
		return exitUsage
	}
	queueReader := mirror.QueueReaderBuiltin
	switch qreader {
	case "builtin":
	case "go-nfqueue":
		queueReader = mirror.QueueReaderGoNFQueue
	default:
		fmt.Fprintf(stderr, "nfmirror: -nfqueue-reader %q: want builtin or go-nfqueue\n", qreader)
		return exitUsage
	}
	var log *slog.Logger
	switch logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	case "json":
		log = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	default:
		fmt.Fprintf(stderr, "nfmirror: -log-format %q: want text or json\n", logFormat)
		return exitUsage
	}
	if dryRun {
		plan, err := service.Load(fs.Arg(0), service.CompileOptions(inst, 0), service.DevicesOf(inst))
		if err != nil {
			fmt.Fprint(stderr, nfrules.Describe(err))
			return exitUsage
		}
		fmt.Fprint(stdout, plan.NFT())
		return exitOK
	}
	cfg := service.Config{
		RulesPath:   fs.Arg(0),
		Instance:    inst,
		InetReader:  inetReader,
		QueueReader: queueReader,
		Log:         log,
		SocketGroup: socketGroup,
		Notify: func(states ...string) {
			if err := sdnotify.Notify(states...); err != nil {
				log.Warn("tell the service manager", "err", err)
			}
		},
	}
	if metrics != "" {
		ms, err := newMetricsServer(metrics, log)
		if err != nil {
			fmt.Fprintf(stderr, "nfmirror: -metrics %s: %v\n", metrics, err)
			return exitError
		}
		mctx, stop := context.WithCancel(ctx)
		defer stop()
		go ms.run(mctx)
		cfg.Serving = ms.setStatus
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg.Reload = hup
	err = service.Run(ctx, cfg)
	if err != nil {
		var in *service.InputError
		if errors.As(err, &in) {
			fmt.Fprint(stderr, nfrules.Describe(in.Err))
			return exitUsage
		}
		fmt.Fprintln(stderr, "nfmirror:", err)
		return exitError
	}
	return exitOK
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	var (
		s      settings
		asJSON bool
	)
	fs := newFlagSet("status", "status [flags]\n\nPrints, per rule, packets matched by the kernel, copies mirrored and copies lost\n(and why), and per destination packets and bytes sent.", stderr)
	fs.StringVar(&s.inst.Table, "table", config.DefaultTable, "-table of the running instance")
	fs.StringVar(&s.inst.StateDir, "state-dir", config.DefaultStateDir, "-state-dir of the running instance")
	s.registerSocket(fs, "control socket of the running 'nfmirror apply'")
	fs.BoolVar(&asJSON, "json", false, "print the raw JSON document")
	if code, ok := parseFlags(fs, args, 0, stdout); !ok {
		return code
	}
	var st service.Status
	if err := control.Query(s.inst.WithDefaults().SocketPath(), &st); err != nil {
		fmt.Fprintln(stderr, "nfmirror:", err)
		return exitError
	}
	if asJSON {
		if err := st.WriteJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "nfmirror:", err)
			return exitError
		}
		return exitOK
	}
	st.WriteTable(stdout)
	return exitOK
}

func runFlush(args []string, stdout, stderr io.Writer) int {
	var s settings
	fs := newFlagSet("flush", "flush [flags]\n\nRemoves what an nfmirror killed with SIGKILL left behind, exactly as its state\nfile records it: the ip rules and routes it added and the interface flags it\nchanged (the kernel already removed its nftables tables). Refuses while that\ninstance runs; never touches anything else. Harmless when nothing is left.", stderr)
	s.register(fs)
	if code, ok := parseFlags(fs, args, 0, stdout); !ok {
		return code
	}
	inst, err := s.instance()
	if err != nil {
		fmt.Fprintln(stderr, "nfmirror:", err)
		return exitUsage
	}
	removed, err := service.Flush(inst)
	if err != nil {
		fmt.Fprintln(stderr, "nfmirror:", err)
		return exitError
	}
	if len(removed) == 0 {
		fmt.Fprintln(stdout, "nothing to flush")
	}
	for _, r := range removed {
		fmt.Fprintln(stdout, "removed", r)
	}
	return exitOK
}

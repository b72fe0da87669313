# nfmirror — a Linux mirror port chosen with firewall syntax.
#
#   make demo    throwaway netns lab with real traffic (root)
#   make test    lint + unit tests + namespace integration tests (root)
#   make build   bin/nfmirror
#   make fuzz    fuzz the rules parser for FUZZTIME (default 60s)
#   make bench   side-by-side mirror benchmark (root; BENCHFLAGS=--quick for ~1 min)
#   make man     regenerate man/*.{5,8} from docs/*.md (go-md2man)
#   make install install the binary, man pages, systemd unit and an example
#                /etc/nfmirror/rules.nft (kept if present); DESTDIR, PREFIX

GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 60s
BENCHFLAGS ?=
STATICCHECK_VERSION := v0.7.0
GOBIN     := $(shell $(GO) env GOPATH)/bin

# Debian packages the tests and the demo drive: nft (the oracle), tcpdump,
# tshark (the analyzer that judges the mirror: checksums, TCP analysis,
# stream reassembly), iperf3, curl, ping, ip, python3 (an HTTP server).
# Installed only when a tool is missing.
DEB_TOOLS := nft:nftables tcpdump:tcpdump tshark:tshark iperf3:iperf3 curl:curl ping:iputils-ping ip:iproute2 python3:python3 \
	setpriv:util-linux man:man-db go-md2man:go-md2man systemd-analyze:systemd

PREFIX    ?= /usr
DESTDIR   ?=
SBINDIR   := $(PREFIX)/sbin
MANDIR    := $(PREFIX)/share/man
UNITDIR   ?= /lib/systemd/system
SYSCONFDIR ?= /etc
MANPAGES  := man/nfmirror.8 man/nfmirror-rules.5

.PHONY: all build deps lint unit integration test demo fuzz bench clean man install

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/nfmirror ./cmd/nfmirror

deps:
	@missing=""; for t in $(DEB_TOOLS); do \
		command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@test -x $(GOBIN)/staticcheck || GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...

# Unit tests only: tests that need root or namespaces skip under -short.
unit:
	$(GO) test -short -count=1 ./...

# Everything, as root: namespace tests fail instead of skipping.
test: deps lint build
	NFMIRROR_REQUIRE_ROOT=1 $(GO) test -count=1 -p 1 -timeout 40m ./...

demo: deps build
	./demo/demo.sh

fuzz:
	$(GO) test ./nfrules -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)

bench: deps build
	./bench/run.sh $(BENCHFLAGS)

# The pages are committed, so building needs no go-md2man; make test checks
# they match their sources.
man: $(MANPAGES)

man/%: docs/%.md
	@mkdir -p man
	go-md2man -in $< -out $@

install: build
	install -D -m 0755 bin/nfmirror $(DESTDIR)$(SBINDIR)/nfmirror
	install -D -m 0644 man/nfmirror.8 $(DESTDIR)$(MANDIR)/man8/nfmirror.8
	install -D -m 0644 man/nfmirror-rules.5 $(DESTDIR)$(MANDIR)/man5/nfmirror-rules.5
	install -D -m 0644 dist/systemd/nfmirror.service $(DESTDIR)$(UNITDIR)/nfmirror.service
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/nfmirror/rules.nft ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/nfmirror/rules.nft"; \
	else \
		install -D -m 0644 dist/rules.nft $(DESTDIR)$(SYSCONFDIR)/nfmirror/rules.nft; \
	fi

clean:
	rm -rf bin

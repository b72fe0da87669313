package nfrules

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"
)

// destKeywords are the words that start a destination other than a local
// interface in "mirror to" and "define".
var destKeywords = map[string]bool{"vxlan": true, "erspan": true, "gre": true, "file": true}

// Units of "rotate".
var (
	sizeUnits = map[string]int64{"bytes": 1, "kbytes": 1 << 10, "mbytes": 1 << 20, "gbytes": 1 << 30}
	timeUnits = map[string]time.Duration{
		"second": time.Second, "seconds": time.Second, "minute": time.Minute, "minutes": time.Minute,
		"hour": time.Hour, "hours": time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	}
)

// parseDestination parses a collector or a capture file:
//
//	vxlan ADDR vni N [port N]
//	erspan ADDR [session N] [version 2|3]
//	gre ADDR
//	file "PATH" [rotate SIZE|TIME ...] [keep N]
//
// with SIZE "N kbytes|mbytes|gbytes" and TIME "N seconds|minutes|hours|days".
func (p *parser) parseDestination() *Destination {
	kw, kpos := p.tok.Text, p.tok.Pos
	p.next()
	if kw == "file" {
		return p.parseFileDest(kpos)
	}
	d := &Destination{}
	switch kw {
	case "vxlan":
		d.Kind = DestVXLAN
	case "erspan":
		d.Kind, d.Version = DestERSPAN, 2
	case "gre":
		d.Kind = DestGRE
	}
	apos := p.tok.Pos
	if p.tok.Kind != tWord && p.tok.Kind != tString {
		p.errorf(apos, "%s needs the collector's IPv4 or IPv6 address, found %s", kw, p.tok.describe())
		return nil
	}
	a, err := netip.ParseAddr(p.tok.Text)
	switch {
	case err != nil || a.Zone() != "":
		p.errorf(apos, "%s collector %q: not an IPv4 or IPv6 address", kw, p.tok.Text)
		return nil
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		p.errorf(apos, "%s collector %s: a collector is one unicast host elsewhere", kw, a)
		return nil
	}
	d.Addr = a.Unmap()
	p.next()
	seen := map[string]bool{}
	option := func(name string, bits int, max uint64) (uint64, bool) {
		opos := p.tok.Pos
		if seen[name] {
			p.errorf(opos, "%s given twice", name)
			return 0, false
		}
		seen[name] = true
		p.next()
		n, ok := parseUint(p.tok.Text, bits)
		if p.tok.Kind != tWord || !ok || n > max {
			p.errorf(p.tok.Pos, "%s %s must be a number from 0 to %d, found %s", kw, name, max, p.tok.describe())
			return 0, false
		}
		p.next()
		return n, true
	}
	for {
		switch {
		case kw == "vxlan" && p.isWord("vni"):
			n, ok := option("vni", 32, 1<<24-1)
			if !ok {
				return nil
			}
			d.VNI = uint32(n)
		case kw == "vxlan" && p.isWord("port"):
			n, ok := option("port", 32, 65535)
			if !ok {
				return nil
			}
			if n == 0 {
				p.errorf(apos, "vxlan port 0: want a UDP port from 1 to 65535")
				return nil
			}
			d.UDPPort = uint16(n)
		case kw == "erspan" && p.isWord("session"):
			n, ok := option("session", 32, 1023)
			if !ok {
				return nil
			}
			d.Session = uint16(n)
		case kw == "erspan" && p.isWord("version"):
			vpos := p.tok.Pos
			n, ok := option("version", 32, 3)
			if !ok {
				return nil
			}
			if n != 2 && n != 3 {
				p.errorf(vpos, "erspan version %d: want 2 (type II) or 3 (type III)", n)
				return nil
			}
			d.Version = int(n)
		default:
			if kw == "vxlan" && !seen["vni"] {
				p.errorf(kpos, "vxlan needs a vni: vxlan ADDR vni N [port N]")
				return nil
			}
			return d
		}
	}
}

// parseFileDest parses the rest of "file "PATH" [rotate ...] [keep N]".
func (p *parser) parseFileDest(kpos Pos) *Destination {
	d := &Destination{Kind: DestFile}
	if p.tok.Kind != tString {
		p.errorf(p.tok.Pos, "file needs a quoted path, found %s", p.tok.describe())
		return nil
	}
	path := p.tok.Text
	switch {
	case !filepath.IsAbs(path):
		p.errorf(p.tok.Pos, "file %q: the path must be absolute", path)
		return nil
	case strings.HasSuffix(path, "/") || filepath.Base(path) == "." || filepath.Base(path) == "..":
		p.errorf(p.tok.Pos, "file %q: names a directory, not a file", path)
		return nil
	}
	d.Path = filepath.Clean(path)
	p.next()
	for {
		switch {
		case p.isWord("rotate"):
			rpos := p.tok.Pos
			p.next()
			n := 0
			for p.tok.Kind == tWord && isDigit(p.tok.Text[0]) {
				npos := p.tok.Pos
				v, ok := parseUint(p.tok.Text, 32)
				p.next()
				unit := p.tok.Text
				switch {
				case !ok || v == 0:
					p.errorf(npos, "rotate %s: want a positive number", p.lastText(npos))
					return nil
				case p.tok.Kind == tWord && sizeUnits[unit] > 0:
					if d.RotateBytes != 0 {
						p.errorf(npos, "rotate gives a size twice")
						return nil
					}
					d.RotateBytes = int64(v) * sizeUnits[unit]
				case p.tok.Kind == tWord && timeUnits[unit] > 0:
					if d.RotateEvery != 0 {
						p.errorf(npos, "rotate gives a time twice")
						return nil
					}
					d.RotateEvery = time.Duration(v) * timeUnits[unit]
				default:
					p.errorf(p.tok.Pos, "rotate %d needs a unit: kbytes, mbytes or gbytes, or seconds, minutes, hours or days; found %s", v, p.tok.describe())
					return nil
				}
				p.next()
				n++
			}
			if n == 0 {
				p.errorf(rpos, "rotate needs a size (100 mbytes) and/or a time (1 hour)")
				return nil
			}
		case p.isWord("keep"):
			if d.Keep != 0 {
				p.errorf(p.tok.Pos, "keep given twice")
				return nil
			}
			p.next()
			v, ok := parseUint(p.tok.Text, 32)
			if p.tok.Kind != tWord || !ok || v == 0 || v > 100000 {
				p.errorf(p.tok.Pos, "keep needs a number of files from 1 to 100000, found %s", p.tok.describe())
				return nil
			}
			d.Keep = int(v)
			p.next()
		default:
			if d.Keep > 0 && d.RotateBytes == 0 && d.RotateEvery == 0 {
				p.errorf(kpos, "keep bounds rotated files: give rotate too (rotate 100 mbytes keep 10)")
				return nil
			}
			return d
		}
	}
}

// lastText is the text of the token at pos, for messages.
func (p *parser) lastText(pos Pos) string {
	if pos.Line-1 < len(p.lines) {
		line := p.lines[pos.Line-1]
		if pos.Col-1 < len(line) {
			f := strings.Fields(line[pos.Col-1:])
			if len(f) > 0 {
				return f[0]
			}
		}
	}
	return fmt.Sprint(pos)
}

package nfrules

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"
)

// MaxFileSize is the largest rules file (or included file) Parse accepts.
const MaxFileSize = 4 << 20

// Bounds on the work and memory one rules file may take, so that a file of
// nested braces or an include fan-out is refused quickly with a position
// instead of taking the stack, the memory or the time.
const (
	// maxIncludeDepth bounds how deeply include statements may nest.
	maxIncludeDepth = 16
	// maxIncludes bounds the include statements followed in all.
	maxIncludes = 256
	// maxTotalBytes bounds the bytes read, the file and its includes.
	maxTotalBytes = 16 << 20
	// maxNesting bounds sets written inside sets.
	maxNesting = 32
	// maxSetElems bounds the elements of one set.
	maxSetElems = 1 << 18
)

// ParseFile reads and parses the rules file at path. See Parse.
func ParseFile(path string) (*Ruleset, error) {
	src, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, src)
}

// readLimited reads a regular file, refusing one over MaxFileSize and
// anything else (a FIFO or a device would block the reader for good): it is
// opened without blocking and checked before it is read.
func readLimited(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, ErrorList{{Pos: Pos{File: path}, Msg: fmt.Sprintf("not a regular file (%s)", fi.Mode().Type())}}
	}
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read rules %s: %w", path, err)
	}
	if len(src) > MaxFileSize {
		return nil, ErrorList{{Pos: Pos{File: path}, Msg: fmt.Sprintf("file too large: more than %d bytes", MaxFileSize)}}
	}
	return src, nil
}

// Parse parses and checks the rules file src; filename names it in
// positions and is the directory include statements are resolved against.
// On failure the error is an ErrorList (sorted, one error per line, at most
// ten) of *Error, each with a position; print it with Describe.
func Parse(filename string, src []byte) (*Ruleset, error) {
	return parse(filename, src, maxErrors)
}

// parse is Parse reporting at most limit errors.
func parse(filename string, src []byte, limit int) (*Ruleset, error) {
	st := &state{vars: map[string]*variable{}, rs: &Ruleset{}, limit: limit}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(bailout); !ok {
					panic(r)
				}
			}
		}()
		abs, _ := filepath.Abs(filename)
		st.stack = []string{abs}
		st.read = int64(len(src))
		st.parseFile(filename, src, Pos{})
		if len(st.errs) == 0 && st.rules == 0 {
			st.add(Pos{File: filename, Line: 1, Col: 1}, firstLine(src), "no rules: nothing to mirror")
		}
	}()
	st.errs.RemoveMultiples()
	if len(st.errs) > limit {
		st.errs = st.errs[:limit]
	}
	if len(st.errs) > 0 {
		return nil, st.errs
	}
	return st.rs, nil
}

// bailout is panicked when too many errors were found.
type bailout struct{}

// state is shared by a file and the files it includes.
type state struct {
	errs     ErrorList
	vars     map[string]*variable
	rs       *Ruleset
	rules    int
	expanded int64    // values and bytes expanded from variables so far
	limit    int      // errors to report before giving up
	stack    []string // absolute paths of the files being read, for cycles
	includes int      // include statements followed so far
	read     int64    // bytes read so far, the file and its includes
	depth    int      // sets being parsed, one inside the other
}

func (st *state) add(pos Pos, source, msg string) {
	if n := len(st.errs); n > 0 {
		if last := st.errs[n-1].Pos; last.File == pos.File && last.Line == pos.Line {
			return // one error per line: the first is the useful one
		}
	}
	st.errs.Add(pos, source, msg)
	if len(st.errs) > 3*st.limit {
		panic(bailout{})
	}
}

// variable is one "define NAME = VALUE".
type variable struct {
	Name string
	Pos  Pos
	Val  *rawVal
	Text string // the value's source text, for rule listings
}

// rawKind is the shape of a value before it is typed against a field.
type rawKind int

const (
	rvAtom   rawKind = iota // a word or a string
	rvRange                 // lo-hi
	rvPrefix                // addr/len
	rvSet                   // { ... }
	rvList                  // a,b,c (bitmask values)
	rvOr                    // a|b|c (bitmask values)
	rvConcat                // a . b . c (Elems)
	rvMasked                // value / mask of a bitmask field (Lo, Hi)
	rvDest                  // a mirror destination (Dest), from a define
)

// rawVal is a value as written, before typing.
type rawVal struct {
	Kind   rawKind
	Pos    Pos
	Text   string // atoms: the word or the string's contents
	Quoted bool
	Lo, Hi *rawVal   // ranges; Lo is the address of a prefix
	Bits   string    // prefixes: the length as written
	Elems  []*rawVal // sets and lists
	Dest   *Destination
}

// at returns a deep copy of v with every position moved to pos: a value
// expanded from a variable is reported where the variable is used.
func (v *rawVal) at(pos Pos) *rawVal {
	if v == nil {
		return nil
	}
	c := *v
	c.Pos = pos
	c.Lo, c.Hi = v.Lo.at(pos), v.Hi.at(pos)
	c.Elems = make([]*rawVal, len(v.Elems))
	for i, e := range v.Elems {
		c.Elems[i] = e.at(pos)
	}
	return &c
}

// parser reads one file.
type parser struct {
	st    *state
	file  string
	src   []byte
	lines []string
	lx    *lexer
	tok   token
	peekd []token   // tokens read ahead of tok
	rec   *recorder // renders the tokens consumed while parsing a rule or a define
}

func firstLine(src []byte) string {
	line, _, _ := bytes.Cut(src, []byte("\n"))
	return string(line)
}

// parseFile parses one file into st. from is the include statement that
// named it, if any.
func (st *state) parseFile(filename string, src []byte, from Pos) {
	if len(src) > MaxFileSize {
		st.add(posOr(from, filename), "", fmt.Sprintf("file too large: more than %d bytes", MaxFileSize))
		return
	}
	if off, what := findGarbage(src); off >= 0 {
		pos := offsetPos(filename, src, off)
		line := sanitizeLine(src, off)
		st.add(pos, line, fmt.Sprintf("%s: this is not a text rules file", what))
		return
	}
	p := &parser{st: st, file: filename, src: src}
	p.lx = newLexer(filename, src, p.errorf)
	p.next()
	p.parseTop()
}

func posOr(p Pos, file string) Pos {
	if p.IsValid() {
		return p
	}
	return Pos{File: file, Line: 1, Col: 1}
}

// findGarbage returns the offset of the first NUL byte or invalid UTF-8
// sequence in src, or -1.
func findGarbage(src []byte) (int, string) {
	for off := 0; off < len(src); {
		c := src[off]
		if c == 0 {
			return off, "NUL byte"
		}
		if c < utf8.RuneSelf {
			off++
			continue
		}
		r, n := utf8.DecodeRune(src[off:])
		if r == utf8.RuneError && n <= 1 {
			return off, "invalid UTF-8"
		}
		off += n
	}
	return -1, ""
}

// offsetPos converts a byte offset to a position.
func offsetPos(file string, src []byte, off int) Pos {
	line := 1 + bytes.Count(src[:off], []byte("\n"))
	start := bytes.LastIndexByte(src[:off], '\n') + 1
	return Pos{File: file, Line: line, Col: off - start + 1}
}

// sanitizeLine returns the line holding off with every byte that is not
// printable text replaced by '?', so columns still line up.
func sanitizeLine(src []byte, off int) string {
	start := bytes.LastIndexByte(src[:off], '\n') + 1
	end := bytes.IndexByte(src[off:], '\n')
	if end < 0 {
		end = len(src)
	} else {
		end += off
	}
	if end-start > 200 {
		end = min(len(src), max(off+40, start+200))
	}
	b := []byte(string(src[start:end]))
	for i, c := range b {
		if c < 0x20 && c != '\t' || c >= utf8.RuneSelf {
			b[i] = '?'
		}
	}
	return string(b)
}

// sourceLine returns line n (from 1) of the file being parsed.
func (p *parser) sourceLine(n int) string {
	if p.lines == nil {
		p.lines = strings.Split(string(p.src), "\n")
	}
	if n < 1 || n > len(p.lines) {
		return ""
	}
	line := strings.TrimSuffix(p.lines[n-1], "\r")
	if n == 1 {
		line = strings.TrimPrefix(line, "\ufeff") // columns do not count a byte order mark
	}
	return line
}

func (p *parser) errorf(pos Pos, format string, args ...any) {
	src := ""
	if pos.File == p.file {
		src = p.sourceLine(pos.Line)
	}
	p.st.add(pos, src, fmt.Sprintf(format, args...))
}

// next makes the following token current.
func (p *parser) next() {
	if p.rec != nil && p.tok.Kind != tEOF {
		p.rec.add(p, p.tok)
	}
	if len(p.peekd) > 0 {
		p.tok, p.peekd = p.peekd[0], p.peekd[1:]
		return
	}
	p.tok = p.lx.next()
}

// peekN returns the n-th token after the current one (n >= 1).
func (p *parser) peekN(n int) token {
	for len(p.peekd) < n {
		if k := len(p.peekd); k > 0 && p.peekd[k-1].Kind == tEOF {
			return p.peekd[k-1]
		}
		p.peekd = append(p.peekd, p.lx.next())
	}
	return p.peekd[n-1]
}

func (p *parser) isWord(s string) bool { return p.tok.Kind == tWord && p.tok.Text == s }

// atEnd reports whether the current token ends a statement.
func (p *parser) atEnd() bool {
	switch p.tok.Kind {
	case tNewline, tSemi, tRBrace, tEOF:
		return true
	}
	return false
}

// sync skips to the end of the current statement: a newline or ';' outside
// braces, or a '}' closing the enclosing block (not consumed). Braces opened
// inside the statement are skipped whole.
func (p *parser) sync() {
	depth := 0
	for {
		switch p.tok.Kind {
		case tEOF:
			return
		case tLBrace:
			depth++
		case tRBrace:
			if depth == 0 {
				return
			}
			depth--
		case tNewline, tSemi:
			if depth == 0 {
				return
			}
		}
		p.next()
	}
}

// expectEnd requires the end of a statement after what was just parsed.
func (p *parser) expectEnd(what string) bool {
	if p.atEnd() {
		return true
	}
	p.errorf(p.tok.Pos, "unexpected %s after %s", p.tok.describe(), what)
	p.sync()
	return false
}

func (p *parser) skipNewlines() {
	for p.tok.Kind == tNewline || p.tok.Kind == tSemi {
		p.next()
	}
}

// topKeywords are the words a statement may start with at the top level.
var topKeywords = append([]string{"define", "include"}, hookNames[:]...)

func (p *parser) parseTop() {
	for {
		p.skipNewlines()
		switch p.tok.Kind {
		case tEOF:
			return
		case tWord:
			switch w := p.tok.Text; w {
			case "define":
				p.parseDefine()
			case "include":
				p.parseInclude()
			case "table", "chain", "flush", "add", "insert":
				p.errorf(p.tok.Pos, "%q: nfmirror files have no tables or chains; write hook blocks such as \"prerouting { ... }\"", w)
				p.sync()
				if p.tok.Kind == tRBrace {
					p.next()
				}
			default:
				if h, ok := LookupHook(w); ok {
					p.parseBlock(h)
					continue
				}
				p.errorf(p.tok.Pos, "unknown hook or keyword %q%s", w, suggest(w, topKeywords))
				p.sync()
				if p.tok.Kind == tRBrace {
					p.next()
				}
			}
		default:
			p.errorf(p.tok.Pos, "unexpected %s: expected a hook block, define or include", p.tok.describe())
			p.next()
			p.sync()
		}
	}
}

func (p *parser) parseDefine() {
	p.next() // define
	if p.tok.Kind != tWord || !isIdent(p.tok.Text) {
		p.errorf(p.tok.Pos, "define needs a variable name, found %s", p.tok.describe())
		p.sync()
		return
	}
	name, pos := p.tok.Text, p.tok.Pos
	p.next()
	if p.tok.Kind != tAssign {
		p.errorf(p.tok.Pos, "expected '=' after define %s, found %s", name, p.tok.describe())
		p.sync()
		return
	}
	p.next()
	if p.tok.Kind == tWord && destKeywords[p.tok.Text] {
		d := p.parseDestination()
		if d == nil {
			p.sync()
			return
		}
		if !p.expectEnd("the destination " + name) {
			return
		}
		if old, ok := p.st.vars[name]; ok {
			p.errorf(pos, "variable %s redefined (first defined at %s)", name, old.Pos)
			return
		}
		p.st.vars[name] = &variable{Name: name, Pos: pos, Val: &rawVal{Kind: rvDest, Pos: pos, Dest: d}, Text: d.Key()}
		return
	}
	var rec recorder
	p.rec = &rec
	v := p.parseValue(false, slashGuess)
	p.rec = nil
	if v == nil {
		p.sync()
		return
	}
	if !p.expectEnd("the value of " + name) {
		return
	}
	if old, ok := p.st.vars[name]; ok {
		p.errorf(pos, "variable %s redefined (first defined at %s)", name, old.Pos)
		return
	}
	text := rec.b.String()
	if n := v.size(); n > maxVarElems || len(text) > maxVarText {
		p.errorf(pos, "value of %s is too large: %d elements, %d bytes (at most %d elements and %d bytes)", name, n, len(text), maxVarElems, maxVarText)
		return
	}
	p.st.vars[name] = &variable{Name: name, Pos: pos, Val: v, Text: text}
}

func isIdent(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLetter(s[i]) && !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func (p *parser) parseInclude() {
	pos := p.tok.Pos
	p.next()
	if p.tok.Kind != tString {
		p.errorf(p.tok.Pos, "include needs a quoted file name, found %s", p.tok.describe())
		p.sync()
		return
	}
	name := p.tok.Text
	p.next()
	if !p.expectEnd("include") {
		return
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(p.file), path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	for i, f := range p.st.stack {
		if f == abs {
			chain := append(append([]string{}, p.st.stack[i:]...), abs)
			for j := range chain {
				chain[j] = filepath.Base(chain[j])
			}
			p.errorf(pos, "include cycle: %s", strings.Join(chain, " includes "))
			return
		}
	}
	if len(p.st.stack) >= maxIncludeDepth {
		p.errorf(pos, "include %q: includes nested more than %d deep", name, maxIncludeDepth)
		return
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		p.errorf(pos, "include %q: not a regular file", name)
		return
	}
	if p.st.includes++; p.st.includes > maxIncludes {
		p.errorf(pos, "include %q: more than %d includes in all", name, maxIncludes)
		panic(bailout{})
	}
	src, err := readLimited(path)
	if err != nil {
		p.errorf(pos, "include %q: %s", name, strings.TrimPrefix(err.Error(), "read rules: "))
		return
	}
	if p.st.read += int64(len(src)); p.st.read > maxTotalBytes {
		p.errorf(pos, "include %q: the file and its includes are more than %d bytes in all", name, maxTotalBytes)
		panic(bailout{})
	}
	p.st.stack = append(p.st.stack, abs)
	p.st.parseFile(path, src, pos)
	p.st.stack = p.st.stack[:len(p.st.stack)-1]
}

func (p *parser) parseBlock(h Hook) {
	b := &Block{Pos: p.tok.Pos, Hook: h}
	p.next()
	if h.Family() == FamilyNetdev {
		switch p.tok.Kind {
		case tString, tWord, tVar:
			dpos := p.tok.Pos
			v := p.parseAtomOrVar()
			if v != nil {
				if v.Kind != rvAtom {
					p.errorf(dpos, "%s needs one device name", h)
				} else if msg := checkIfname(v.Text, false); msg != "" {
					p.errorf(dpos, "device %s", msg)
				} else {
					b.Device = v.Text
				}
			}
		default:
			p.errorf(p.tok.Pos, "%s needs a device: %s \"eth0\" { ... }", h, h)
		}
	} else if p.tok.Kind == tString || p.tok.Kind == tVar {
		p.errorf(p.tok.Pos, "%s is an inet hook and takes no device (only ingress and egress do)", h)
		p.next()
	}
	p.skipNewlinesOnly()
	if p.tok.Kind != tLBrace {
		p.errorf(p.tok.Pos, "expected '{' to open the %s block, found %s", h, p.tok.describe())
		p.sync()
		if p.tok.Kind == tRBrace {
			p.next()
		}
		return
	}
	p.next()
	for {
		p.skipNewlines()
		switch {
		case p.tok.Kind == tRBrace:
			p.next()
			p.st.rs.Blocks = append(p.st.rs.Blocks, b)
			return
		case p.tok.Kind == tEOF:
			p.errorf(b.Pos, "%s block is not closed: missing '}'", h)
			return
		case p.isWord("define"):
			p.parseDefine()
		default:
			if r := p.parseRule(b); r != nil {
				b.Rules = append(b.Rules, r)
				p.st.rules++
			}
		}
	}
}

func (p *parser) skipNewlinesOnly() {
	for p.tok.Kind == tNewline {
		p.next()
	}
}

// parseAtomOrVar parses a device or destination name: a word, a string or a
// variable holding one.
func (p *parser) parseAtomOrVar() *rawVal {
	switch p.tok.Kind {
	case tWord, tString:
		v := &rawVal{Kind: rvAtom, Pos: p.tok.Pos, Text: p.tok.Text, Quoted: p.tok.Kind == tString}
		p.next()
		return v
	case tVar:
		return p.expandVar()
	}
	p.errorf(p.tok.Pos, "expected an interface name, found %s", p.tok.describe())
	return nil
}

// expandVar returns the value of the variable at the current token.
func (p *parser) expandVar() *rawVal {
	name, pos := p.tok.Text, p.tok.Pos
	p.next()
	v, ok := p.st.vars[name]
	if !ok {
		names := make([]string, 0, len(p.st.vars))
		for n := range p.st.vars {
			names = append(names, n)
		}
		p.errorf(pos, "undefined variable $%s%s", name, suggestVar(name, names))
		return nil
	}
	p.st.expanded += int64(v.Val.size()) + int64(len(v.Text))
	if p.st.expanded > maxExpansion {
		p.errorf(pos, "variables expand to more than %d bytes in all: the file is too large once expanded", maxExpansion)
		panic(bailout{})
	}
	return v.Val.at(pos)
}

// Bounds on variables, so that variables defined from variables cannot
// blow up exponentially.
const (
	maxVarElems  = 1 << 16  // values in one variable
	maxVarText   = 1 << 20  // bytes of one variable's text
	maxExpansion = 64 << 20 // bytes and values expanded in a whole file
)

// size counts the atoms in v.
func (v *rawVal) size() int {
	if v == nil {
		return 0
	}
	if v.Kind == rvAtom {
		return 1
	}
	n := v.Lo.size() + v.Hi.size()
	for _, e := range v.Elems {
		n += e.size()
	}
	return n
}

func suggestVar(name string, names []string) string {
	s := suggest(name, names)
	if s == "" {
		return ""
	}
	return strings.Replace(s, "mean ", "mean $", 1)
}

// How '/' after a value reads.
const (
	slashPrefix  = iota // addr/len only
	slashGuess          // in a define: a number is a prefix length, a word a flag mask
	slashFlagMsk        // a bitmask field: VALUE / MASK
)

// parseValue parses a value: an atom, a range, a prefix, a set, a variable,
// a concatenation "a . b", flags or-ed with "|", or (outside sets) a comma
// list of bitmask values. slash says how "/" reads (slashPrefix...).
func (p *parser) parseValue(inSet bool, slash int) *rawVal {
	v := p.parseConcat(inSet, slash)
	if v == nil {
		return nil
	}
	if !inSet && p.tok.Kind == tComma {
		list := &rawVal{Kind: rvList, Pos: v.Pos, Elems: []*rawVal{v}}
		for p.tok.Kind == tComma {
			p.next()
			e := p.parseConcat(true, slashPrefix)
			if e == nil {
				return nil
			}
			list.Elems = append(list.Elems, e)
		}
		v = list
	}
	return v
}

// parseConcat parses "a . b . c", or one element.
func (p *parser) parseConcat(inSet bool, slash int) *rawVal {
	first := p.parseElem(inSet, slash)
	if first == nil || p.tok.Kind != tDot {
		return first
	}
	cv := &rawVal{Kind: rvConcat, Pos: first.Pos, Elems: []*rawVal{first}}
	for p.tok.Kind == tDot {
		p.next()
		e := p.parseElem(true, slashPrefix)
		if e == nil {
			return nil
		}
		if e.Kind == rvSet || e.Kind == rvConcat || first.Kind == rvSet {
			p.errorf(e.Pos, "a concatenation joins single values, ranges or prefixes")
			return nil
		}
		cv.Elems = append(cv.Elems, e)
	}
	return cv
}

// parsePrimary parses a set, a variable, a string, or words joined by "|".
func (p *parser) parsePrimary() *rawVal {
	var v *rawVal
	switch p.tok.Kind {
	case tLBrace:
		return p.parseSet()
	case tVar:
		name := p.tok.Text
		v = p.expandVar()
		if v != nil && v.Kind == rvDest {
			p.errorf(v.Pos, "$%s is a mirror destination, not a value to match", name)
			return nil
		}
	case tString:
		v = &rawVal{Kind: rvAtom, Pos: p.tok.Pos, Text: p.tok.Text, Quoted: true}
		p.next()
	case tWord:
		v = &rawVal{Kind: rvAtom, Pos: p.tok.Pos, Text: p.tok.Text}
		p.next()
	default:
		p.errorf(p.tok.Pos, "expected a value, found %s", p.tok.describe())
		return nil
	}
	if v == nil || p.tok.Kind != tPipe {
		return v
	}
	or := &rawVal{Kind: rvOr, Pos: v.Pos, Elems: []*rawVal{v}}
	for p.tok.Kind == tPipe {
		p.next()
		if p.tok.Kind != tWord && p.tok.Kind != tVar {
			p.errorf(p.tok.Pos, "expected a value after '|', found %s", p.tok.describe())
			return nil
		}
		e := p.parsePrimary()
		if e == nil {
			return nil
		}
		if e.Kind == rvOr {
			or.Elems = append(or.Elems, e.Elems...)
		} else {
			or.Elems = append(or.Elems, e)
		}
	}
	return or
}

// parseElem parses one value with its prefix length, range end or flag
// mask.
func (p *parser) parseElem(inSet bool, slash int) *rawVal {
	v := p.parsePrimary()
	if v == nil {
		return nil
	}
	switch p.tok.Kind {
	case tSlash:
		if v.Kind != rvAtom && v.Kind != rvOr {
			p.errorf(p.tok.Pos, "only an address can have a prefix length")
			return nil
		}
		p.next()
		if !inSet && p.tok.Kind == tWord && (slash == slashFlagMsk || slash == slashGuess && !isDigit(p.tok.Text[0])) {
			// VALUE / MASK: the mask is a list of flags.
			mask := p.parsePrimary()
			if mask == nil {
				return nil
			}
			if p.tok.Kind == tComma {
				list := &rawVal{Kind: rvList, Pos: mask.Pos, Elems: []*rawVal{mask}}
				for p.tok.Kind == tComma {
					p.next()
					e := p.parsePrimary()
					if e == nil {
						return nil
					}
					list.Elems = append(list.Elems, e)
				}
				mask = list
			}
			return &rawVal{Kind: rvMasked, Pos: v.Pos, Lo: v, Hi: mask}
		}
		if v.Kind != rvAtom {
			p.errorf(v.Pos, "only an address can have a prefix length")
			return nil
		}
		if p.tok.Kind != tWord || !isDigit(p.tok.Text[0]) {
			p.errorf(p.tok.Pos, "expected a prefix length after '/', found %s", p.tok.describe())
			return nil
		}
		v = &rawVal{Kind: rvPrefix, Pos: v.Pos, Lo: v, Bits: p.tok.Text}
		p.next()
	case tDash:
		if v.Kind != rvAtom {
			p.errorf(p.tok.Pos, "a range needs a single value on each side of '-'")
			return nil
		}
		p.next()
		hi := p.parsePrimary()
		if hi == nil {
			return nil
		}
		if hi.Kind != rvAtom || p.tok.Kind == tSlash {
			p.errorf(hi.Pos, "a range needs a single value on each side of '-'")
			return nil
		}
		v = &rawVal{Kind: rvRange, Pos: v.Pos, Lo: v, Hi: hi}
	}
	return v
}

// parseSet parses "{ a, b-c, $set, ... }", flattening nested sets.
func (p *parser) parseSet() *rawVal {
	set := &rawVal{Kind: rvSet, Pos: p.tok.Pos}
	if p.st.depth >= maxNesting {
		p.errorf(p.tok.Pos, "sets nested more than %d deep", maxNesting)
		panic(bailout{})
	}
	p.st.depth++
	defer func() { p.st.depth-- }()
	p.next() // {
	for {
		p.skipNewlinesOnly()
		if p.tok.Kind == tRBrace {
			break
		}
		e := p.parseValue(true, slashPrefix)
		if e == nil {
			return nil
		}
		if e.Kind == rvSet {
			set.Elems = append(set.Elems, e.Elems...)
		} else {
			set.Elems = append(set.Elems, e)
		}
		if len(set.Elems) > maxSetElems {
			p.errorf(set.Pos, "set has more than %d elements", maxSetElems)
			panic(bailout{})
		}
		p.skipNewlinesOnly()
		if p.tok.Kind == tComma {
			p.next()
			continue
		}
		if p.tok.Kind != tRBrace {
			p.errorf(p.tok.Pos, "expected ',' or '}' in set, found %s", p.tok.describe())
			return nil
		}
	}
	p.next() // }
	if len(set.Elems) == 0 {
		p.errorf(set.Pos, "empty set: a set needs at least one element")
		return nil
	}
	return set
}

// recorder renders, as they are consumed, the tokens of a rule or a
// define: one space where the source had whitespace or a line break, $VAR
// replaced by its value's text, and cut with " ..." past maxVarText bytes.
// Rendering as it goes keeps a define of many thousand elements from
// holding all its tokens.
type recorder struct {
	b            strings.Builder
	pendingSpace bool
	cut          bool
}

func (r *recorder) add(p *parser, t token) {
	if r.cut {
		return
	}
	if t.Kind == tNewline {
		r.pendingSpace = true
		return
	}
	if r.b.Len() > 0 && (t.Space || r.pendingSpace) {
		r.b.WriteByte(' ')
	}
	r.pendingSpace = false
	if r.b.Len() > maxVarText {
		r.b.WriteString(" ...")
		r.cut = true
		return
	}
	if t.Kind == tVar {
		if v, ok := p.st.vars[t.Text]; ok {
			r.b.WriteString(v.Text)
			return
		}
	}
	r.b.WriteString(t.source())
}

// matchKeywordList caches matchKeywords.
var matchKeywordList = sync.OnceValue(func() []string {
	out := []string{"limit", "numgen", "mirror"}
	seen := map[string]bool{}
	for name := range Fields {
		first, _, _ := strings.Cut(name, " ")
		if !seen[first] {
			seen[first] = true
			out = append(out, first)
		}
	}
	sort.Strings(out)
	return out
})

// matchKeywords are the words a match may start with, for suggestions.
func matchKeywords() []string { return matchKeywordList() }

// nextWords lists the words that may follow prefix in a field name
// ("tcp" -> dport, sport, flags, ...).
func nextWords(prefix string) []string {
	var out []string
	seen := map[string]bool{}
	for name := range Fields {
		if rest, ok := strings.CutPrefix(name, prefix+" "); ok {
			w, _, _ := strings.Cut(rest, " ")
			if !seen[w] {
				seen[w] = true
				out = append(out, w)
			}
		}
	}
	return out
}

// parseFieldName reads the longest field name starting at the current
// word: "tcp dport", "arp saddr ip", "ct original ip saddr", "mark".
func (p *parser) parseFieldName() *Field {
	name := p.tok.Text
	n, best := 1, 0
	if full, _ := fieldPrefix(name); full {
		best = 1
	}
	for {
		_, partial := fieldPrefix(name)
		if !partial {
			break
		}
		t := p.peekN(n)
		if t.Kind != tWord {
			break
		}
		next := name + " " + t.Text
		full, more := fieldPrefix(next)
		if !full && !more {
			break
		}
		name, n = next, n+1
		if full {
			best = n
		}
	}
	if best == 0 {
		if _, partial := fieldPrefix(name); partial {
			t := p.peekN(n)
			words := nextWords(name)
			hint := suggest(t.Text, words)
			if hint == "" {
				sort.Strings(words)
				hint = fmt.Sprintf(": %s is followed by %s", name, strings.Join(words, ", "))
			}
			p.errorf(t.Pos, "unknown %s field %s%s", name, t.describe(), hint)
		} else {
			p.errorf(p.tok.Pos, "unknown keyword %q%s", p.tok.Text, suggest(p.tok.Text, matchKeywords()))
		}
		return nil
	}
	words := []string{p.tok.Text}
	for i := 1; i < best; i++ {
		words = append(words, p.peekN(i).Text)
	}
	for i := 0; i < best; i++ {
		p.next()
	}
	return Fields[strings.Join(words, " ")]
}

// parseMatch parses one match expression.
func (p *parser) parseMatch() Match {
	if p.tok.Kind != tWord {
		p.errorf(p.tok.Pos, "expected a match or \"mirror to\", found %s", p.tok.describe())
		return nil
	}
	pos := p.tok.Pos
	switch p.tok.Text {
	case "limit":
		return p.parseLimit()
	case "numgen":
		return p.parseNumgen()
	}
	f := p.parseFieldName()
	if f == nil {
		return nil
	}
	c := &Compare{Pos: pos, Fields: []*Field{f}}
	for p.tok.Kind == tDot {
		dot := p.tok.Pos
		p.next()
		if p.tok.Kind != tWord {
			p.errorf(p.tok.Pos, "expected a field after '.', found %s", p.tok.describe())
			return nil
		}
		g := p.parseFieldName()
		if g == nil {
			return nil
		}
		for _, h := range []*Field{f, g} {
			if h.Forms&FormConcat == 0 {
				p.formError(dot, h, "%s cannot be part of a concatenation", h.Name)
				return nil
			}
		}
		c.Fields = append(c.Fields, g)
	}
	if !p.parseBitOps(c) {
		return nil
	}
	c.Op = p.parseOp()
	slash := slashPrefix
	if f.Forms&FormFlags != 0 && len(c.Fields) == 1 {
		slash = slashFlagMsk
	}
	raw := p.parseValue(false, slash)
	if raw == nil {
		return nil
	}
	if !p.typeCompare(c, raw) {
		return nil
	}
	return c
}

// bitOpWords are the words nft accepts for &, | and ^.
var bitOpWords = map[string]byte{"and": '&', "or": '|', "xor": '^'}

// parseBitOps parses "& MASK" and "| BITS" (or "and", "or") after a field,
// as many as written, and folds them into c.Bits as nft does: & binds
// before |, left to right.
func (p *parser) parseBitOps(c *Compare) bool {
	f := c.Field()
	for {
		var op byte
		switch {
		case p.tok.Kind == tAmp:
			op = '&'
		case p.tok.Kind == tPipe:
			op = '|'
		case p.tok.Kind == tCaret:
			op = '^'
		case p.tok.Kind == tWord && bitOpWords[p.tok.Text] != 0:
			op = bitOpWords[p.tok.Text]
		default:
			return true
		}
		opPos := p.tok.Pos
		p.next()
		if op == '^' {
			// nft folds "x ^ b == v" into "x == v ^ b" and lists that; a
			// bitwise xor would list differently.
			p.errorf(opPos, "%s: ^ (xor) is not supported: compare with the value xor-ed instead", f.Name)
			return false
		}
		if len(c.Fields) > 1 || f.Forms&FormMask == 0 {
			p.formError(opPos, f, "%s cannot be masked", f.Name)
			return false
		}
		var raw *rawVal
		if p.tok.Kind == tLParen {
			p.next()
			raw = p.parsePrimary()
			if raw != nil && p.tok.Kind == tComma {
				list := &rawVal{Kind: rvList, Pos: raw.Pos, Elems: []*rawVal{raw}}
				for raw != nil && p.tok.Kind == tComma {
					p.next()
					e := p.parsePrimary()
					if e == nil {
						return false
					}
					list.Elems = append(list.Elems, e)
				}
				raw = list
			}
			if raw == nil {
				return false
			}
			if p.tok.Kind != tRParen {
				p.errorf(p.tok.Pos, "expected ')' to close the mask, found %s", p.tok.describe())
				return false
			}
			p.next()
		} else {
			switch p.tok.Kind {
			case tWord, tString:
				raw = &rawVal{Kind: rvAtom, Pos: p.tok.Pos, Text: p.tok.Text, Quoted: p.tok.Kind == tString}
				p.next()
			case tVar:
				raw = p.expandVar()
			default:
				p.errorf(p.tok.Pos, "expected a mask after %c, found %s", op, p.tok.describe())
				return false
			}
			if raw == nil {
				return false
			}
		}
		a, ok := p.typeMask(f, raw)
		if !ok {
			return false
		}
		if p.tok.Kind == tDot {
			p.errorf(p.tok.Pos, "%s with a mask cannot be part of a concatenation", f.Name)
			return false
		}
		if c.Bits == nil {
			n := len(a)
			ones := make([]byte, n)
			for i := range ones {
				ones[i] = 0xff
			}
			c.Bits = &BitOp{Pos: opPos, Mask: ones, Xor: make([]byte, n)}
		}
		switch op {
		case '&':
			c.Bits.Mask, c.Bits.Xor = andBytes(c.Bits.Mask, a), andBytes(c.Bits.Xor, a)
		case '|':
			c.Bits.Mask, c.Bits.Xor = andBytes(c.Bits.Mask, notBytes(a)), orBytes(c.Bits.Xor, a)
		}
	}
}

// typeMask types the operand of a bitwise operation on f.
func (p *parser) typeMask(f *Field, raw *rawVal) ([]byte, bool) {
	if raw.Kind == rvAtom {
		a, msg := typeAtom(f, raw)
		if msg != "" {
			p.errorf(raw.Pos, "%s cannot be masked with %s: %s", f.Name, raw.Text, msg)
			return nil, false
		}
		return a.d.Bytes, true
	}
	a, ok := p.typeScalar(f, raw)
	if !ok {
		return nil, false
	}
	return a.d.Bytes, true
}

// parseRule parses one rule of block b. It returns nil after reporting
// errors; it always stops at the end of the statement.
func (p *parser) parseRule(b *Block) *Rule {
	var rec recorder
	p.rec = &rec
	defer func() { p.rec = nil }()
	r := &Rule{Pos: p.tok.Pos}
	ok := true
	for !p.atEnd() && !p.isWord("mirror") {
		m := p.parseMatch()
		if m == nil {
			p.sync()
			return nil
		}
		r.Matches = append(r.Matches, m)
	}
	if !p.isWord("mirror") {
		p.errorf(r.Pos, "rule has no mirror statement: end it with \"mirror to DEVICE\"")
		return nil
	}
	for p.isWord("mirror") {
		m := p.parseMirror()
		if m == nil {
			p.sync()
			return nil
		}
		r.Mirrors = append(r.Mirrors, m)
	}
	if !p.atEnd() {
		p.errorf(p.tok.Pos, "unexpected %s after mirror: mirror statements end a rule", p.tok.describe())
		p.sync()
		return nil
	}
	r.Text = rec.b.String()
	if !p.checkRule(b, r) {
		ok = false
	}
	if !ok {
		return nil
	}
	return r
}

var wordOps = map[string]Op{"eq": OpEq, "ne": OpNeq, "lt": OpLt, "gt": OpGt, "le": OpLte, "ge": OpGte}

// parseOp parses an optional relational operator.
func (p *parser) parseOp() Op {
	if p.tok.Kind == tOp {
		for i, n := range opNames {
			if n == p.tok.Text && i > 0 {
				p.next()
				return Op(i)
			}
		}
	}
	if p.tok.Kind == tWord {
		if op, ok := wordOps[p.tok.Text]; ok {
			p.next()
			return op
		}
	}
	return OpImplicit
}

// parseUint parses a decimal or 0x hexadecimal unsigned integer.
func parseUint(s string, bits int) (uint64, bool) {
	base := 10
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s, base = s[2:], 16
	}
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if n > (1<<64-1-d)/uint64(base) {
			return 0, false
		}
		n = n*uint64(base) + d
	}
	if bits < 64 && n >= 1<<bits {
		return n, false
	}
	return n, true
}

var rateUnits = map[string]LimitUnit{"second": PerSecond, "minute": PerMinute, "hour": PerHour, "day": PerDay, "week": PerWeek}

// byteUnits are the units of byte rates and bursts.
var byteUnits = map[string]uint64{"bytes": 1, "kbytes": 1 << 10, "mbytes": 1 << 20}

// parseLimit parses "limit rate [over] N/UNIT [burst N packets]" and
// "limit rate [over] N [bytes|kbytes|mbytes]/UNIT [burst N [bytes|kbytes|mbytes]]".
func (p *parser) parseLimit() Match {
	l := &Limit{Pos: p.tok.Pos}
	p.next()
	if !p.isWord("rate") {
		p.errorf(p.tok.Pos, "expected \"rate\" after limit, found %s", p.tok.describe())
		return nil
	}
	p.next()
	if p.isWord("over") {
		l.Over = true
		p.next()
	}
	if p.isWord("until") {
		p.next()
	}
	if p.tok.Kind != tWord {
		p.errorf(p.tok.Pos, "expected a rate such as 10/second, found %s", p.tok.describe())
		return nil
	}
	ratePos, rateText := p.tok.Pos, p.tok.Text
	n, ok := parseUint(rateText, 64)
	if !ok || n == 0 {
		p.errorf(p.tok.Pos, "limit rate must be a positive integer, not %q", p.tok.Text)
		return nil
	}
	p.next()
	if p.tok.Kind == tWord {
		if u, isBytes := byteUnits[p.tok.Text]; isBytes {
			if n > (1<<64-1)/u {
				p.errorf(ratePos, "limit rate %s %s is too large", rateText, p.tok.Text)
				return nil
			}
			n *= u
			l.Bytes = true
			p.next()
		} else {
			p.errorf(p.tok.Pos, "unknown rate unit %s: use a packet rate such as 10/second or a byte rate such as 10 mbytes/second%s", p.tok.describe(), suggest(p.tok.Text, []string{"bytes", "kbytes", "mbytes"}))
			return nil
		}
	}
	l.Rate = n
	if p.tok.Kind != tSlash {
		p.errorf(p.tok.Pos, "expected '/' and a unit after the rate, found %s", p.tok.describe())
		return nil
	}
	p.next()
	u, ok := rateUnits[p.tok.Text]
	if p.tok.Kind != tWord || !ok {
		p.errorf(p.tok.Pos, "unknown rate unit %s: use second, minute, hour, day or week%s", p.tok.describe(), suggest(p.tok.Text, []string{"second", "minute", "hour", "day", "week"}))
		return nil
	}
	l.Unit = u
	p.next()
	if p.isWord("burst") {
		p.next()
		b, ok := parseUint(p.tok.Text, 32)
		if p.tok.Kind != tWord || !ok || b == 0 {
			p.errorf(p.tok.Pos, "burst must be a positive 32-bit integer, found %s", p.tok.describe())
			return nil
		}
		p.next()
		switch {
		case l.Bytes:
			unit, isBytes := byteUnits[p.tok.Text]
			if p.tok.Kind != tWord || !isBytes {
				p.errorf(p.tok.Pos, "expected bytes, kbytes or mbytes after the burst of a byte rate, found %s", p.tok.describe())
				return nil
			}
			if b*unit > 1<<32-1 {
				p.errorf(p.tok.Pos, "burst must be at most 4294967295 bytes")
				return nil
			}
			b *= unit
		case !p.isWord("packets"):
			p.errorf(p.tok.Pos, "expected \"packets\" after the burst size, found %s", p.tok.describe())
			return nil
		}
		l.Burst = uint32(b)
		p.next()
	}
	return l
}

// parseNumgen parses "numgen random mod N [OP] M".
func (p *parser) parseNumgen() Match {
	s := &Sample{Pos: p.tok.Pos}
	p.next()
	if !p.isWord("random") {
		p.errorf(p.tok.Pos, "expected \"random\" after numgen (only random sampling is supported), found %s", p.tok.describe())
		return nil
	}
	p.next()
	if !p.isWord("mod") {
		p.errorf(p.tok.Pos, "expected \"mod\" after numgen random, found %s", p.tok.describe())
		return nil
	}
	p.next()
	n, ok := parseUint(p.tok.Text, 32)
	if p.tok.Kind != tWord || !ok || n == 0 {
		p.errorf(p.tok.Pos, "numgen modulus must be an integer from 1 to 4294967295, found %s", p.tok.describe())
		return nil
	}
	s.Mod = uint32(n)
	p.next()
	s.Op = p.parseOp()
	m, ok := parseUint(p.tok.Text, 32)
	if p.tok.Kind != tWord || !ok {
		p.errorf(p.tok.Pos, "expected a number to compare numgen with, found %s", p.tok.describe())
		return nil
	}
	if m >= n && (s.Op == OpImplicit || s.Op == OpEq || s.Op == OpGte || s.Op == OpGt) {
		p.errorf(p.tok.Pos, "numgen random mod %d yields 0 to %d: %s %d never matches", n, n-1, s.Op, m)
		return nil
	}
	s.Value = uint32(m)
	p.next()
	return s
}

// parseMirror parses "mirror to DEST [snaplen N] [lossless] [shared]",
// DEST being a device, a collector ("vxlan ADDR vni N", "erspan ADDR
// session N", "gre ADDR"), a capture file ("file PATH rotate ... keep N")
// or a variable holding one.
func (p *parser) parseMirror() *Mirror {
	m := &Mirror{Pos: p.tok.Pos}
	p.next()
	if !p.isWord("to") {
		p.errorf(p.tok.Pos, "expected \"to\" after mirror, found %s", p.tok.describe())
		return nil
	}
	p.next()
	dpos := p.tok.Pos
	if p.atEnd() {
		p.errorf(dpos, "mirror to needs a destination: an interface, a collector (vxlan, erspan, gre) or a file")
		return nil
	}
	if p.tok.Kind == tWord && destKeywords[p.tok.Text] {
		d := p.parseDestination()
		if d == nil {
			return nil
		}
		m.To, m.Dest = *d, d.Key()
	} else {
		v := p.parseAtomOrVar()
		if v == nil {
			return nil
		}
		switch {
		case v.Kind == rvDest:
			m.To, m.Dest = *v.Dest, v.Dest.Key()
		case v.Kind != rvAtom:
			p.errorf(dpos, "mirror to needs one interface name")
			return nil
		default:
			if msg := checkIfname(v.Text, false); msg != "" {
				p.errorf(dpos, "mirror destination %s", msg)
				return nil
			}
			m.Dest = v.Text
		}
	}
	seenSnap, seenLossless := false, false
	for {
		switch {
		case p.isWord("snaplen") && !seenSnap:
			seenSnap = true
			p.next()
			n, ok := parseUint(p.tok.Text, 32)
			if p.tok.Kind != tWord || !ok || n == 0 || n > 65535 {
				p.errorf(p.tok.Pos, "snaplen must be from 1 to 65535 bytes, found %s", p.tok.describe())
				return nil
			}
			m.Snaplen = uint32(n)
			p.next()
		case p.isWord("lossless") && !seenLossless:
			seenLossless = true
			m.Lossless = true
			p.next()
		case p.isWord("shared") && !m.Shared:
			if !m.Target().Local() {
				p.errorf(p.tok.Pos, "shared is for a local interface that also carries the host's traffic, not for %s", m.Dest)
				return nil
			}
			m.Shared = true
			p.next()
		default:
			return m
		}
	}
}

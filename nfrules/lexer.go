package nfrules

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// tokKind is the kind of a lexical token.
type tokKind int

const (
	tEOF     tokKind = iota
	tNewline         // end of a line: ends a rule outside braces
	tWord            // keywords, numbers, addresses, symbols: tcp, 8080, 198.18.0.1, eth*
	tString          // "quoted", Text without the quotes
	tVar             // $name, Text without the $
	tLBrace          // {
	tRBrace          // }
	tComma           // ,
	tSemi            // ;
	tSlash           // /
	tDash            // - standing alone (a range written "lo - hi")
	tAssign          // =
	tOp              // == != < > <= >=
	tAmp             // &
	tPipe            // |
	tLParen          // (
	tRParen          // )
	tDot             // . standing alone: joins a concatenation
	tCaret           // ^
	tBad             // a character no token starts with
)

var tokNames = [...]string{"end of file", "end of line", "word", "string", "variable", "'{'", "'}'", "','", "';'", "'/'", "'-'", "'='", "operator", "'&'", "'|'", "'('", "')'", "'.'", "'^'", "bad character"}

func (k tokKind) String() string {
	if int(k) < len(tokNames) {
		return tokNames[k]
	}
	return fmt.Sprintf("token(%d)", int(k))
}

// token is one lexical token.
type token struct {
	Kind  tokKind
	Text  string // the token's text; for strings and variables, without quotes or $
	Pos   Pos
	Space bool // whitespace (or a comment) came before it on the same line
	Off   int  // byte offset of the token in its file
}

// describe names the token for an error message.
func (t token) describe() string {
	switch t.Kind {
	case tWord:
		return fmt.Sprintf("%q", t.Text)
	case tString:
		return fmt.Sprintf("string %q", t.Text)
	case tVar:
		return "$" + t.Text
	case tOp:
		return fmt.Sprintf("%q", t.Text)
	case tBad:
		return fmt.Sprintf("character %q", t.Text)
	}
	return t.Kind.String()
}

// source returns the token as written, for rule listings.
func (t token) source() string {
	switch t.Kind {
	case tString:
		return `"` + t.Text + `"`
	case tVar:
		return "$" + t.Text
	case tNewline, tEOF:
		return ""
	}
	return t.Text
}

// lexer splits one file into tokens.
type lexer struct {
	file string
	src  []byte
	off  int
	line int
	col  int // column of src[off], from 1
	errs func(pos Pos, format string, args ...any)
}

func newLexer(file string, src []byte, errs func(Pos, string, ...any)) *lexer {
	l := &lexer{file: file, src: src, line: 1, col: 1, errs: errs}
	if bytes.HasPrefix(src, []byte("\xef\xbb\xbf")) { // a UTF-8 byte order mark
		l.off = 3
	}
	return l
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// isWordByte reports whether c may continue a word.
func isWordByte(c byte) bool {
	return isLetter(c) || isDigit(c) || c == '.' || c == ':' || c == '-' || c == '*'
}

func (l *lexer) pos() Pos { return Pos{File: l.file, Line: l.line, Col: l.col} }

func (l *lexer) advance(n int) {
	for i := 0; i < n && l.off < len(l.src); i++ {
		if l.src[l.off] == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
		l.off++
	}
}

// next returns the next token. It always consumes at least one byte unless it
// returns tEOF.
func (l *lexer) next() token {
	space := false
	for l.off < len(l.src) {
		c := l.src[l.off]
		if c == ' ' || c == '\t' || c == '\r' || c == '\\' && l.off+1 < len(l.src) && l.src[l.off+1] == '\n' {
			if c == '\\' {
				l.advance(1) // a backslash continues the line
			}
			l.advance(1)
			space = true
			continue
		}
		if c == '#' {
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.advance(1)
			}
			space = true
			continue
		}
		break
	}
	t := token{Pos: l.pos(), Space: space, Off: l.off}
	if l.off >= len(l.src) {
		t.Kind = tEOF
		return t
	}
	c := l.src[l.off]
	start := l.off
	one := func(k tokKind) token {
		t.Kind, t.Text = k, string(c)
		l.advance(1)
		return t
	}
	switch {
	case c == '\n':
		t.Kind, t.Text = tNewline, "\n"
		l.advance(1)
		return t
	case c == '"':
		l.advance(1)
		for l.off < len(l.src) && l.src[l.off] != '"' && l.src[l.off] != '\n' {
			l.advance(1)
		}
		t.Kind, t.Text = tString, string(l.src[start+1:l.off])
		if l.off >= len(l.src) || l.src[l.off] != '"' {
			l.errs(t.Pos, "unterminated string: a string ends with \" on the same line")
			return t
		}
		l.advance(1)
		return t
	case c == '$':
		l.advance(1)
		for l.off < len(l.src) && (isLetter(l.src[l.off]) || isDigit(l.src[l.off])) {
			l.advance(1)
		}
		t.Kind, t.Text = tVar, string(l.src[start+1:l.off])
		if t.Text == "" {
			l.errs(t.Pos, "$ must be followed by a variable name")
		}
		return t
	case isLetter(c) || isDigit(c) || c == '*' || c == ':' && l.off+1 < len(l.src) && l.src[l.off+1] == ':':
		end := l.off
		for end < len(l.src) && isWordByte(l.src[end]) {
			end++
		}
		for end > start+1 && l.src[end-1] == '-' { // a trailing '-' is a range dash
			end--
		}
		l.advance(end - start)
		t.Kind, t.Text = tWord, string(l.src[start:end])
		return t
	case c == '{':
		return one(tLBrace)
	case c == '}':
		return one(tRBrace)
	case c == ',':
		return one(tComma)
	case c == ';':
		return one(tSemi)
	case c == '/':
		return one(tSlash)
	case c == '-':
		return one(tDash)
	case c == '&':
		return one(tAmp)
	case c == '|':
		return one(tPipe)
	case c == '(':
		return one(tLParen)
	case c == ')':
		return one(tRParen)
	case c == '.':
		return one(tDot)
	case c == '^':
		return one(tCaret)
	case c == '=' || c == '!' || c == '<' || c == '>':
		if l.off+1 < len(l.src) && l.src[l.off+1] == '=' {
			t.Kind, t.Text = tOp, string(l.src[start:start+2])
			l.advance(2)
			return t
		}
		switch c {
		case '=':
			return one(tAssign)
		case '<', '>':
			return one(tOp)
		}
	}
	// Anything else: one bad character (a whole UTF-8 rune when valid).
	_, n := utf8.DecodeRune(l.src[l.off:])
	if n < 1 {
		n = 1
	}
	t.Kind, t.Text = tBad, string(l.src[start:start+n])
	l.advance(n)
	return t
}

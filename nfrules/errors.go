package nfrules

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// maxErrors is how many errors a parse reports before it gives up.
const maxErrors = 10

// Error is one problem in a rules file, at a position.
type Error struct {
	Pos    Pos
	Msg    string
	Source string // the source line Pos points into, without its newline
}

// Error formats e as "file:line:col: msg".
func (e *Error) Error() string {
	if e.Pos.IsValid() || e.Pos.File != "" {
		return e.Pos.String() + ": " + e.Msg
	}
	return e.Msg
}

// ErrorList is a list of positioned errors, as returned by Parse: sorted by
// position, at most one per line, at most ten.
type ErrorList []*Error

// Add appends an error at pos.
func (l *ErrorList) Add(pos Pos, source, msg string) {
	*l = append(*l, &Error{Pos: pos, Msg: msg, Source: source})
}

// Len returns the number of errors; with Swap and Less it makes ErrorList
// sortable by file, line and column.
func (l ErrorList) Len() int { return len(l) }

// Swap swaps two errors.
func (l ErrorList) Swap(i, j int) { l[i], l[j] = l[j], l[i] }

// Less orders errors by file, line, column, then message.
func (l ErrorList) Less(i, j int) bool {
	a, b := l[i].Pos, l[j].Pos
	if a.File != b.File {
		return a.File < b.File
	}
	if a.Line != b.Line {
		return a.Line < b.Line
	}
	if a.Col != b.Col {
		return a.Col < b.Col
	}
	return l[i].Msg < l[j].Msg
}

// Sort sorts the list by position.
func (l ErrorList) Sort() { sort.Stable(l) }

// RemoveMultiples sorts the list and keeps only the first error of each line.
func (l *ErrorList) RemoveMultiples() {
	l.Sort()
	out := (*l)[:0]
	var last Pos
	for i, e := range *l {
		if i > 0 && e.Pos.File == last.File && e.Pos.Line == last.Line {
			continue
		}
		last = e.Pos
		out = append(out, e)
	}
	*l = out
}

// Error joins the errors' messages, one per line.
func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Err returns the list as an error, or nil when it is empty.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Describe renders err for a terminal the way nft does: for every positioned
// error "file:line:col: message", then the source line, then a caret under
// the column. Errors without a position are rendered with their Error method.
func Describe(err error) string {
	if err == nil {
		return ""
	}
	var list ErrorList
	var one *Error
	switch {
	case errors.As(err, &list):
	case errors.As(err, &one):
		list = ErrorList{one}
	default:
		return err.Error()
	}
	var b strings.Builder
	for i, e := range list {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
		if e.Source == "" || !e.Pos.IsValid() {
			continue
		}
		fmt.Fprintf(&b, "\n%s\n%s^", e.Source, caretIndent(e.Source, e.Pos.Col))
	}
	return b.String()
}

// caretIndent returns the blanks that put a caret under byte column col of
// line, keeping tabs so the caret lines up however tabs are shown.
func caretIndent(line string, col int) string {
	var b strings.Builder
	for i := 0; i < col-1 && i < len(line); i++ {
		switch c := line[i]; {
		case c == '\t':
			b.WriteByte('\t')
		case c&0xc0 == 0x80: // UTF-8 continuation byte: one column per rune
		default:
			b.WriteByte(' ')
		}
	}
	return b.String()
}

package promapi

import (
	"sync"

	"github.com/valyala/fastjson"

	"github.com/ebbscale/ebb/queries"
)

// answerCache is what one shape's answers leave for the next: their size,
// their label values and the parser that read them. A tick's answer names
// mostly the workloads the last one named, so decoding it then allocates
// only for what is new.
type answerCache struct {
	mu    sync.Mutex // held for one decode, by Prometheus.withAnswerCache
	rows  int        // rows in the last answer, to size the next one
	strs  map[string]*interned
	gen   uint32 // counts answers
	inUse int    // distinct values of the current answer
	// parser keeps its buffers from answer to answer: a pool would not,
	// as the garbage collector empties pools between ticks seconds apart.
	parser fastjson.Parser
}

type interned struct {
	s   string
	gen uint32 // the last answer that held s
}

// maxAnswerCaches bounds the shapes remembered; past it they start afresh.
const maxAnswerCaches = 64

// withAnswerCache decodes one answer of shape with its cache: it holds the
// cache's lock while decode runs, then records the answer's rows (see done).
// decode returns the rows of its answer and whether it failed.
func (p *Prometheus) withAnswerCache(shape queries.Shape, decode func(c *answerCache) (rows int, err error)) error {
	c := p.answerCache(shape)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.inUse = 0
	rows, err := decode(c)
	c.done(rows, err)
	return err
}

// answerCache returns shape's cache, creating it if it is new.
func (p *Prometheus) answerCache(shape queries.Shape) *answerCache {
	p.cachesMu.Lock()
	defer p.cachesMu.Unlock()
	c := p.caches[shape]
	if c == nil {
		if len(p.caches) >= maxAnswerCaches {
			clear(p.caches)
		}
		c = &answerCache{strs: make(map[string]*interned)}
		p.caches[shape] = c
	}
	return c
}

// intern returns b as a string, the same string for the same bytes as long
// as every answer holds them.
func (c *answerCache) intern(b []byte) string {
	if e, ok := c.strs[string(b)]; ok { // no allocation: the compiler looks up b in place
		if e.gen != c.gen {
			e.gen = c.gen
			c.inUse++
		}
		return e.s
	}
	s := string(b)
	c.strs[s] = &interned{s: s, gen: c.gen}
	c.inUse++
	return s
}

// done ends a decode, under the lock: it records the rows of an answer that
// decoded without err and forgets the values answers no longer hold once
// they outnumber those in use.
func (c *answerCache) done(rows int, err error) {
	if err == nil {
		c.rows = rows
	}
	if len(c.strs) > 2*c.inUse+64 {
		for k, e := range c.strs {
			if e.gen != c.gen {
				delete(c.strs, k)
			}
		}
	}
}

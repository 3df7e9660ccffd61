package autopilot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// HoursPerMonth is the month that monthly costs are computed for.
const HoursPerMonth = 730

// Prices is the price table costs are computed with. A file given to
// ReadPrices overrides any of its fields, for example:
//
//	{"currency": "EUR", "cpuCoreHour": 0.028, "gpuHour": {"H100-80GB": 6.5}}
type Prices struct {
	Currency string `json:"currency"`
	// CPUCoreHour is the price of one core for one hour.
	CPUCoreHour float64 `json:"cpuCoreHour"`
	// MemoryGiBHour is the price of one GiB of memory for one hour.
	MemoryGiBHour float64 `json:"memoryGiBHour"`
	// GPUHour is the price of one GPU for one hour by GPU class (see
	// GPUClass: "A100-40GB", "H100-80GB", "L4", ...); "default" prices a
	// GPU of any other class.
	GPUHour map[string]float64 `json:"gpuHour"`
}

// DefaultPrices returns approximate public on-demand list prices in USD of
// the large clouds (2025), per unit and hour: a core $0.0316, a GiB of
// memory $0.0042, and per GPU: T4 $0.35, L4 $0.71, A10G $1.01, V100 $2.48,
// A100-40GB $2.93, A100-80GB $3.67, H100-80GB $9.80, any other $2.50.
// Clusters on discounts or their own hardware should pass their own table.
func DefaultPrices() Prices {
	return Prices{
		Currency:      "USD",
		CPUCoreHour:   0.0316,
		MemoryGiBHour: 0.0042,
		GPUHour: map[string]float64{
			"T4":        0.35,
			"L4":        0.71,
			"A10G":      1.01,
			"V100":      2.48,
			"A100-40GB": 2.93,
			"A100-80GB": 3.67,
			"H100-80GB": 9.80,
			"default":   2.50,
		},
	}
}

// ReadPrices returns DefaultPrices overridden by the JSON in r. Unknown
// fields, GPU classes other than GPUClass's and "default", negative and
// non-finite prices are errors: a GPU of a model GPUClass does not know
// is priced by "default".
func ReadPrices(r io.Reader) (Prices, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return Prices{}, err
	}
	var f struct {
		Currency      *string            `json:"currency"`
		CPUCoreHour   *float64           `json:"cpuCoreHour"`
		MemoryGiBHour *float64           `json:"memoryGiBHour"`
		GPUHour       map[string]float64 `json:"gpuHour"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Prices{}, fmt.Errorf("prices: %w", err)
	}
	p := DefaultPrices()
	if f.Currency != nil {
		p.Currency = *f.Currency
	}
	if f.CPUCoreHour != nil {
		p.CPUCoreHour = *f.CPUCoreHour
	}
	if f.MemoryGiBHour != nil {
		p.MemoryGiBHour = *f.MemoryGiBHour
	}
	var unknown []string
	for k, v := range f.GPUHour {
		if _, ok := p.GPUHour[k]; !ok {
			unknown = append(unknown, k)
		}
		p.GPUHour[k] = v
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		for i, k := range unknown {
			unknown[i] = strconv.Quote(k)
		}
		return Prices{}, fmt.Errorf("prices: gpuHour: unknown GPU class %s; known: %s, and default for any other GPU",
			strings.Join(unknown, ", "), strings.Join(gpuClasses(), ", "))
	}
	return p, p.Validate()
}

// GPUClasses are the classes GPUClass names, which a price file and a cold
// start can be set for, sorted.
func GPUClasses() []string { return gpuClasses() }

// gpuClasses are the classes GPUClass returns, which a price file can set.
func gpuClasses() []string {
	var out []string
	for k := range DefaultPrices().GPUHour {
		if k != "default" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Validate reports every price that is negative or not a number.
func (p Prices) Validate() error {
	var errs []error
	check := func(name string, v float64) {
		if !(v >= 0) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("prices: %s = %v, must be a finite number >= 0", name, v))
		}
	}
	check("cpuCoreHour", p.CPUCoreHour)
	check("memoryGiBHour", p.MemoryGiBHour)
	keys := make([]string, 0, len(p.GPUHour))
	for k := range p.GPUHour {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		check("gpuHour."+k, p.GPUHour[k])
	}
	if strings.TrimSpace(p.Currency) == "" {
		errs = append(errs, errors.New("prices: currency: empty"))
	}
	return errors.Join(errs...)
}

// GPU returns the hourly price of one GPU of class c.
func (p Prices) GPU(c string) float64 {
	if v, ok := p.GPUHour[c]; ok {
		return v
	}
	return p.GPUHour["default"]
}

// containerHourly returns the hourly price of one container's requests.
func (p Prices) containerHourly(cpu, mem float64) float64 {
	return cpu*p.CPUCoreHour + mem/GiB*p.MemoryGiBHour
}

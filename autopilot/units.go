package autopilot

import (
	"math"
	"strconv"
	"strings"
)

// FormatCPU renders cores as Kubernetes writes them: "250m", "2", "1500m".
func FormatCPU(cores float64) string {
	m := int64(math.Round(cores * 1000))
	if m%1000 == 0 {
		return strconv.FormatInt(m/1000, 10)
	}
	return strconv.FormatInt(m, 10) + "m"
}

// FormatMemory renders bytes as a Kubernetes quantity in whole MiB or GiB:
// "512Mi", "2Gi", "1536Mi".
func FormatMemory(bytes float64) string {
	mi := int64(math.Ceil(bytes/MiB - 1e-9))
	if mi%1024 == 0 && mi != 0 {
		return strconv.FormatInt(mi/1024, 10) + "Gi"
	}
	return strconv.FormatInt(mi, 10) + "Mi"
}

// ceilTo rounds v up to a multiple of unit.
func ceilTo(v, unit float64) float64 {
	n := math.Ceil(v/unit - 1e-9)
	if unit < 1 {
		return n / math.Round(1/unit) // 575 / 1000 is 0.575, 575 * 0.001 is not
	}
	return n * unit
}

// round rounds v to n decimals.
func round(v float64, n int) float64 {
	p := math.Pow(10, float64(n))
	return math.Round(v*p) / p
}

// significant rounds v to n significant digits.
func significant(v float64, n int) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	d := math.Ceil(math.Log10(math.Abs(v)))
	p := math.Pow(10, float64(n)-d)
	return math.Round(v*p) / p
}

// number renders v in at most 4 significant digits: "0.48", "1234", "1.5e+06".
func number(v float64) string { return strconv.FormatFloat(significant(v, 4), 'g', -1, 64) }

// pct renders a share as a percentile's name: 0.9 -> "90", 0.995 -> "99.5".
func pct(share float64) string { return strconv.FormatFloat(round(share*100, 2), 'f', -1, 64) }

// pctOf renders a share as a percentage: 0.25 -> "25%".
func pctOf(share float64) string { return pct(share) + "%" }

// currencySymbols are the symbols FormatMoney writes for these ISO codes;
// any other currency is written as its code and a space.
var currencySymbols = map[string]string{"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}

// FormatMoney renders an amount with its currency's symbol, thousands
// separators and cents: "$2,280.23", "-€16.76", "CHF 1,000.00".
func FormatMoney(v float64, currency string) string {
	sym, ok := currencySymbols[currency]
	if !ok {
		sym = currency + " "
	}
	sign := ""
	if v < 0 && math.Round(v*100) != 0 {
		sign, v = "-", -v
	}
	s := strconv.FormatFloat(math.Abs(v), 'f', 2, 64)
	return sign + sym + groupThousands(s[:len(s)-3]) + s[len(s)-3:]
}

// FormatThousands renders v rounded to a whole number with thousands
// separators: "81,560", "-1,200".
func FormatThousands(v float64) string {
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	if strings.HasPrefix(s, "-") {
		return "-" + groupThousands(s[1:])
	}
	return groupThousands(s)
}

// groupThousands puts a comma between each group of three digits.
func groupThousands(digits string) string {
	var b strings.Builder
	for i, r := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

//go:build race

package stats

// raceEnabled widens timing budgets: the race detector slows memory access.
const raceEnabled = true

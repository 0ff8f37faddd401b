package main

// Settings of `raftmq server` come from four levels, highest first: the
// command line, RAFTMQ_* environment variables, the config file named by
// --config (or RAFTMQ_CONFIG), the built-in defaults. Each level sets
// only the flags no higher level set, so a repeatable flag (network) given
// at one level replaces, rather than extends, the values below it.
//
// This is written here on flag.FlagSet rather than with
// github.com/peterbourgon/ff/v3, which layers flags, environment and
// config file the same way, because matching our rules with it would
// have needed nearly as much glue: its plain config parser reports no
// line numbers, splits name and value on one space only and cuts values
// at " #"; its environment splitting applies to every flag (a data path
// with a space would become two values) where only network takes a list;
// and its config files also accept RAFTMQ_* names as settings.

import (
	"errors"
	"flag"
	"fmt"
	iofs "io/fs"
	"os"
	"strings"
	"unicode"
)

// envPrefix starts every variable naming a flag.
const envPrefix = "RAFTMQ_"

// envName is the variable for a flag: bootstrap-expect is
// RAFTMQ_BOOTSTRAP_EXPECT.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// repeatable is implemented by flags that collect values (network).
type repeatable interface{ repeatable() }

func isRepeatable(f *flag.Flag) bool {
	_, ok := f.Value.(repeatable)
	return ok
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// applyEnvAndConfig sets, in fs, where the command line (already parsed
// into fs) did not, the flags given by RAFTMQ_* variables, then those
// given by the config file. check is a fresh flag set of the same flags:
// every variable and file line is also set there, so a bad value is an
// error even while a higher level overrides it, rather than a surprise on
// the day the override goes.
func applyEnvAndConfig(fs, check *flag.FlagSet) error {
	// from records who set each flag: skipping the flags a higher level
	// set is the whole precedence rule.
	from := map[string]string{}
	fs.Visit(func(f *flag.Flag) { from[f.Name] = "the command line" })

	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		name := envName(f.Name)
		v := os.Getenv(name)
		// An empty variable counts as unset: compose files and unit
		// templates often leave one empty to mean "not given".
		values := []string{v}
		if isRepeatable(f) {
			// Several network specs in one variable; specs contain
			// commas, never spaces.
			values = strings.Fields(v)
		}
		if v == "" || len(values) == 0 {
			return
		}
		apply := from[f.Name] == ""
		for _, x := range values {
			if e := check.Set(f.Name, x); e != nil {
				err = usageError{fmt.Errorf("%s: invalid value %q for --%s: %v", name, x, f.Name, e)}
				return
			}
			if apply {
				fs.Set(f.Name, x) // checked above
			}
		}
		if apply {
			from[f.Name] = name
		}
	})
	if err != nil {
		return err
	}

	path := fs.Lookup(configFlag).Value.String()
	if path == "" {
		return nil
	}
	return applyConfigFile(fs, check, path, from)
}

// applyConfigFile reads the config file at path: one setting per line,
// the flag name, whitespace, then the value as on the command line (the
// rest of the line, trimmed, no quoting). Blank lines and lines starting
// with # are skipped. A boolean alone means true. Only network may appear
// on several lines.
func applyConfigFile(fs, check *flag.FlagSet, path string, from map[string]string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		// "config file x: no such file or directory" rather than the
		// bare "open x: ...", and where x came from when it was not
		// the command line.
		var pe *iofs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		src := ""
		if from[configFlag] != "the command line" {
			src = " (from " + from[configFlag] + ")"
		}
		return usageError{fmt.Errorf("config file %s%s: %w", path, src, err)}
	}
	firstLine := map[string]int{} // for repeated single-valued settings
	for i, line := range strings.Split(string(data), "\n") {
		lineErr := func(format string, a ...any) error {
			return usageError{fmt.Errorf("%s:%d: %s", path, i+1, fmt.Sprintf(format, a...))}
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, hasValue := line, "", false
		if j := strings.IndexFunc(line, unicode.IsSpace); j >= 0 {
			name, value, hasValue = line[:j], strings.TrimSpace(line[j:]), true
		}
		f := fs.Lookup(name)
		switch {
		case f == nil && strings.HasPrefix(name, "-"):
			return lineErr("unknown setting %q (write names without dashes)", name)
		case f == nil:
			return lineErr("unknown setting %q", name)
		case name == configFlag:
			// One file: a file naming another would be read by nobody.
			return lineErr("%q cannot be set in a config file", name)
		}
		if !isRepeatable(f) {
			if first, dup := firstLine[name]; dup {
				return lineErr("%q already set on line %d", name, first)
			}
			firstLine[name] = i + 1
		}
		if !hasValue {
			if !isBoolFlag(f) {
				return lineErr("setting %q needs a value", name)
			}
			value = "true"
		}
		if err := check.Set(name, value); err != nil {
			return lineErr("invalid value %q for %s: %v", value, name, err)
		}
		if from[name] == "" {
			fs.Set(name, value) // checked above
		}
	}
	return nil
}

// Package selector implements JMS message selectors, the SQL-92 subset of
// JMS 1.1 (section 3.8.1) as ActiveMQ implements it, for the "selector"
// header of STOMP SUBSCRIBE frames.
//
// A selector is compiled once and evaluated against each message:
//
//	s, err := selector.Compile("type = 'order' AND price > 100")
//	...
//	if s.Matches(func(name string) (string, bool) { v, ok := headers[name]; return v, ok }) {
//
// Matches sees a message only through that lookup function, from
// identifier to header value, and treats every identifier alike: a caller
// that offers JMS header fields maps JMSPriority, JMSTimestamp,
// JMSMessageID, JMSCorrelationID, JMSType, JMSDeliveryMode ("PERSISTENT"
// or "NON_PERSISTENT"), JMSExpiration, JMSDestination, JMSReplyTo,
// JMSXGroupID and the like to its own fields inside lookup. Identifiers
// lists the names a selector reads. A compiled Selector is immutable and
// safe for concurrent use.
//
// # Syntax
//
// Literals: strings in single quotes, in which a quote is doubled;
// exact numerics in decimal (42, 42L), hexadecimal (0x2A) or octal
// (052), with an optional L; approximate numerics as in Java (1.5, 1.,
// .5, 1e3, 1.5E-2, with an optional F or D: 1.5f, 2d); TRUE, FALSE and
// NULL. For example:
//
//	title = 'it''s' AND size >= 0x400 AND ratio < .5e-1 AND NOT urgent
//
// Identifiers are Java identifiers: a letter, '_' or '$', then letters,
// digits, '_' and '$'. They are case-sensitive. STOMP header names often
// hold '-' (content-type, correlation-id) or '.', which a bare
// identifier cannot, since "a-b" is a subtraction; such a header is
// written as a double-quoted identifier, with "" for a quote inside:
// "correlation-id" = 'abc'.
//
// Keywords, which are not identifiers and match regardless of case: AND
// OR NOT BETWEEN LIKE ESCAPE IN IS NULL TRUE FALSE, and XPATH and XQUERY
// (reserved, as in ActiveMQ, but not supported).
//
// Operators, lowest precedence first: OR; AND; NOT; the comparisons
// = <> < > <= >=, [NOT] BETWEEN x AND y, [NOT] IN ('a', 'b', ...),
// [NOT] LIKE 'pattern' [ESCAPE 'c'], IS [NOT] NULL; + and -; * / and %;
// unary + and -. Parentheses group. Comparisons do not chain: "a = b = c"
// is an error. In LIKE, '%' stands for any run of characters and '_'
// for one character; the ESCAPE character makes a following '%', '_'
// or itself literal. IN lists and LIKE patterns are string literals.
// White space, /* block */ and -- line comments separate tokens; as in
// ActiveMQ, "--" opens a comment only if a line break follows it
// somewhere, so a selector ending in "5--1" means 5 - -1.
//
// An empty selector (or one of only blanks and comments) selects every
// message, as JMS says.
//
// # Evaluation
//
// Header values are strings, and are read according to what they meet:
//
//   - Against a number, or in arithmetic, a header is converted to a
//     number when it is one (an optional sign, digits, an optional
//     fraction and exponent: "10", "-3", "10.5", "1e3"), so "price > 5"
//     works for a header price:10. A header that is not a number makes
//     the comparison UNKNOWN.
//   - Against TRUE or FALSE, or as a condition on its own ("WHERE
//     urgent"), a header holding "true" or "false" in any case is a
//     boolean; anything else is UNKNOWN.
//   - Against another string, a string compares exactly: "a = b" is
//     false for a:10 and b:10.0.
//   - <, >, <=, >= and BETWEEN compare numbers only. Mixed integer and
//     float operands are compared as float64.
//
// Logic is SQL's three-valued logic. A missing header is NULL; a
// comparison, arithmetic, LIKE or IN with a NULL operand is UNKNOWN (or
// NULL); NOT UNKNOWN is UNKNOWN; FALSE AND UNKNOWN is FALSE; TRUE OR
// UNKNOWN is TRUE. Only IS [NOT] NULL looks at NULL itself, and an
// UNKNOWN condition IS NULL. A message matches only when the selector is
// TRUE, so neither "a = 1" nor "NOT (a = 1)" matches a message without a.
//
// Arithmetic keeps integers as int64 while they fit and goes over to
// float64 when they would overflow. "/" always divides as floats (7 / 2
// is 3.5), as in ActiveMQ. Division or remainder by zero, and results
// that are not numbers, are NULL.
//
// Compile rejects what can never make sense: a string, boolean or NULL
// literal where a number is needed, NULL in = or <>, TRUE compared with
// a number or a string literal, a number or string where a condition is
// needed, LIKE or IN on anything but an identifier or a string literal.
//
// # Cost
//
// Selectors come from the network. Compile refuses sources longer than
// MaxLength bytes and nesting deeper than MaxDepth levels, so parsing
// neither runs long nor overflows the stack. Matches evaluates each node
// of the selector at most once, so its time is linear in the size of the
// selector and of the header values it reads: LIKE is matched in one pass
// without backtracking (see like.go), a long IN list is a hash set, AND
// and OR stop at the first operand that decides them. Constants are
// parsed at compile time, and Matches does not allocate.
//
// # Differences from ActiveMQ
//
// ActiveMQ 5 parses every STOMP selector with string conversion turned on
// ("convert_string_expressions"), since STOMP headers are strings. This
// package follows that, with these differences, mostly where ActiveMQ's
// results are accidents of its Java implementation:
//
//   - Precedence. ActiveMQ's grammar makes NOT a unary operator that binds
//     tighter than comparisons, so it reads "NOT a = 'x'" as "(NOT a) =
//     'x'", and it ranks = and <> below < and LIKE and lets comparisons
//     chain. This package uses the precedence of JMS and SQL: "NOT a =
//     'x'" is "NOT (a = 'x')", and "a = NOT b" is an error.
//   - Failed conversions. ActiveMQ converts a string with the Java parser
//     of the other operand's type (Integer.valueOf against 5, so a header
//     "10.5" fails against 5), and a failed conversion makes the
//     comparison FALSE, so "NOT (price > 5)" matches price:abc there.
//     Here any decimal integer or float converts, and a failure is
//     UNKNOWN, so neither "price > 5" nor "NOT (price > 5)" matches.
//   - Booleans. ActiveMQ reads any string but "true" as false, so
//     "flag = FALSE" matches flag:banana there; here it is UNKNOWN. A bare
//     identifier used as a condition is always false in ActiveMQ for
//     STOMP headers (they are strings, not booleans); here "true" and
//     "false" headers work.
//   - Strings. ActiveMQ orders two string headers with < and >
//     lexicographically, and + concatenates when its left operand is a
//     string. Here ordering is numeric only (UNKNOWN unless both are
//     numbers), and + adds numbers only.
//   - NULL. ActiveMQ's = gives FALSE rather than UNKNOWN when only its
//     right operand is NULL ('x' = missing is FALSE, so 'x' <> missing is
//     TRUE); here both sides are alike.
//   - Arithmetic. ActiveMQ wraps on integer overflow and gives Infinity
//     or NaN on division by zero; here see Evaluation above.
//   - Identifiers. ActiveMQ takes ASCII letters only, and has no quoted
//     identifiers (Artemis has a mode with '-' in identifiers, which
//     breaks "a-b"); here identifiers may hold any Unicode letters and
//     digits, and double quotes give any header name.
//   - Literals. ActiveMQ's grammar has no F or D suffixes, nor L on hex or
//     octal; this package takes them, as Java does. Decimal integers
//     beyond int64 become float64 (ActiveMQ: BigDecimal); hex and octal
//     ones are refused, as in ActiveMQ, and so are floats beyond float64
//     (ActiveMQ: Infinity).
//   - ESCAPE is one character (a Unicode code point; in ActiveMQ a UTF-16
//     unit). As in ActiveMQ it escapes only '%', '_' and itself.
//   - IN. The left operand may also be a string literal (ActiveMQ: an
//     identifier only). Like ActiveMQ and JMS, the list holds string
//     literals only: "JMSPriority IN (4, 5)" is an error.
//   - Not supported: XPATH and XQUERY selectors, and ActiveMQ 5's
//     function calls (REGEX, INLIST, SPLIT...). Both are syntax errors.
//   - "!=" is not an operator in either; here the error says to use <>.
package selector

# Shared by the benchmark scripts: medians and docs/benchmarks.md sections.

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print 0} else if (NR%2) {print a[(NR+1)/2]} else {printf "%d\n", (a[NR/2]+a[NR/2+1])/2}}'; }

# field KEY from a key=value line
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

# replace_section NAME FILE: replaces the lines between
# <!-- NAME:begin --> and <!-- NAME:end --> in docs/benchmarks.md with FILE
# (appending the section if it is not there yet).
replace_section() {
  local name=$1 body=$2 doc=docs/benchmarks.md
  mkdir -p docs
  [ -f "$doc" ] || printf '# Benchmarks\n\nFigures measured on the project machine (2 cores, shared and noisy): medians of repeated trials, with the command that reproduces each table.\n' > "$doc"
  if grep -q "<!-- $name:begin -->" "$doc"; then
    awk -v name="$name" -v body="$body" '
      $0 == "<!-- " name ":begin -->" { print; while ((getline line < body) > 0) print line; skip=1; next }
      $0 == "<!-- " name ":end -->" { skip=0 }
      !skip { print }' "$doc" > "$doc.tmp" && mv "$doc.tmp" "$doc"
  else
    { echo; echo "<!-- $name:begin -->"; cat "$body"; echo "<!-- $name:end -->"; } >> "$doc"
  fi
}

#!/usr/bin/env bash
# The build-time budget: how long a translation unit that includes the umbrella header takes to
# compile, against one that includes only what the library builds on (asio.hpp, asio/ssl.hpp,
# nlohmann/json.hpp). Same compiler, same flags, same run, alternating the two, ROUNDS rounds
# (default 5); prints the medians and the ratio, and fails when it is above 1.5.
# It also times both with ASIO_SEPARATE_COMPILATION (Asio's own compiled in one translation unit
# of the program's; see WORKSPACE_SEPARATE_COMPILATION), which is what that option saves.
#
# Environment: ROUNDS, CXX (default g++), CXXFLAGS (default -std=c++20 -O2), ASIO_INCLUDE (an
# Asio other than the system's, e.g. a current 1.3x).
#
# INSTRUCTIONS=1 also counts the instructions the compiler executes for each translation unit
# (valgrind, once each, about two minutes each): unlike wall time, that count does not move with
# the load of a shared machine, so its ratio is the figure to compare between changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${ROUNDS:-5}"
cxx="${CXX:-g++}"
read -r -a flags <<< "${CXXFLAGS:--std=c++20 -O2}"
flags+=(-DASIO_STANDALONE -I"$root/include")
[ -n "${ASIO_INCLUDE:-}" ] && flags+=(-isystem "$ASIO_INCLUDE")

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '#include <asio.hpp>\n#include <asio/ssl.hpp>\n#include <nlohmann/json.hpp>\nint main() {}\n' > "$work/baseline.cpp"
printf '#include <workspace/workspace.hpp>\nint main() {}\n' > "$work/umbrella.cpp"

# compile_seconds FILE [FLAGS...]: wall time of one compile to an object file.
compile_seconds() {
  local file="$1"
  shift
  local start end
  start=$(date +%s.%N)
  "$cxx" "${flags[@]}" "$@" -c "$work/$file.cpp" -o "$work/$file.o"
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A times
variants=(baseline umbrella baseline_separate umbrella_separate)
for ((round = 1; round <= rounds; round++)); do
  # Alternate which goes first, so that a burst of load does not land on one of them only.
  order=("${variants[@]}")
  ((round % 2 == 0)) && order=(umbrella_separate baseline_separate umbrella baseline)
  for variant in "${order[@]}"; do
    case "$variant" in
      *_separate) t=$(compile_seconds "${variant%_separate}" -DASIO_SEPARATE_COMPILATION) ;;
      *) t=$(compile_seconds "$variant") ;;
    esac
    times[$variant]+="$t "
  done
done

asio_version=$(printf '#include <asio/version.hpp>\nASIO_VERSION\n' | "$cxx" "${flags[@]}" -E -P -x c++ - | tail -1)
echo "compiler: $("$cxx" --version | head -1); flags: ${flags[*]}; Asio $asio_version; $rounds rounds"
printf '%-44s %10s %10s %10s\n' "translation unit (median wall time)" "median" "min" "max"
declare -A med
for variant in "${variants[@]}"; do
  med[$variant]=$(tr ' ' '\n' <<< "${times[$variant]}" | grep . | median)
  min=$(tr ' ' '\n' <<< "${times[$variant]}" | grep . | sort -g | head -1)
  max=$(tr ' ' '\n' <<< "${times[$variant]}" | grep . | sort -g | tail -1)
  case "$variant" in
    baseline) label="asio.hpp + asio/ssl.hpp + nlohmann/json.hpp" ;;
    umbrella) label="workspace/workspace.hpp" ;;
    baseline_separate) label="  the same, ASIO_SEPARATE_COMPILATION" ;;
    umbrella_separate) label="workspace/workspace.hpp, ASIO_SEPARATE_COMPILATION" ;;
  esac
  printf '%-44s %9.2fs %9.2fs %9.2fs\n' "$label" "${med[$variant]}" "$min" "$max"
done
ratio=$(echo "scale=3; ${med[umbrella]} / ${med[baseline]}" | bc)
ratio_separate=$(echo "scale=3; ${med[umbrella_separate]} / ${med[baseline]}" | bc)
saving=$(echo "scale=3; ${med[umbrella_separate]} / ${med[umbrella]}" | bc)
echo "umbrella / baseline: $ratio (budget <= 1.5)"
echo "umbrella with ASIO_SEPARATE_COMPILATION / baseline: $ratio_separate"
echo "umbrella with / without ASIO_SEPARATE_COMPILATION: $saving"
# instructions FILE [FLAGS...]: instructions executed by the compiler (all its processes).
instructions() {
  local file="$1"
  shift
  valgrind --tool=cachegrind --cache-sim=no --trace-children=yes --cachegrind-out-file=/dev/null \
    --log-file="$work/$file.vg.%p" "$cxx" "${flags[@]}" "$@" -c "$work/$file.cpp" -o "$work/$file.o"
  cat "$work/$file".vg.* | sed -n 's/.*I *refs: *//p' | tr -d , | awk '{ s += $1 } END { printf "%.0f", s }'
  rm -f "$work/$file".vg.*
}
if [ "${INSTRUCTIONS:-0}" = 1 ]; then
  command -v valgrind >/dev/null || { echo "INSTRUCTIONS=1 needs valgrind" >&2; exit 1; }
  # The two run side by side: counts do not depend on sharing the machine.
  instructions baseline > "$work/baseline.count" &
  instructions umbrella > "$work/umbrella.count"
  wait
  base_count=$(cat "$work/baseline.count")
  umbrella_count=$(cat "$work/umbrella.count")
  printf 'instructions executed by the compiler: baseline %.2fG, umbrella %.2fG, ratio %s\n' \
    "$(echo "$base_count / 10^9" | bc -l)" "$(echo "$umbrella_count / 10^9" | bc -l)" \
    "$(echo "scale=3; $umbrella_count / $base_count" | bc)"
fi
if (($(echo "$ratio > 1.5" | bc))); then
  echo "over the build-time budget" >&2
  exit 1
fi

#!/usr/bin/env python3
"""The README's Architecture table against Package.swift's resolved target graph (run by `make test`).

Checks, from `swift package dump-package`:
  1. every target of the package has a row in the README's module table, and no row names a target that is gone;
  2. the row's "depends on" column lists exactly the target's direct dependencies (MeterTrust targets by name,
     products of other packages as `product (package)`);
  3. the meter-side module's dependency closure holds none of the platform's modules or libraries;
  4. no module imports a MeterTrust module or a package product it does not declare (the compiler allows
     transitive imports), and no
     module uses `@_exported`.
Exit status 1 with one line per finding.
"""
import json, pathlib, re, subprocess, sys

root = pathlib.Path(__file__).resolve().parent.parent
package = json.loads(subprocess.run(["swift", "package", "dump-package"], cwd=root, check=True,
                                    capture_output=True, text=True).stdout)

METER_SIDE = "MeterTrustDevice"
FORBIDDEN_FOR_METER = {"CPKCS11", "MeterTrustHSM", "MeterTrustStore", "MeterTrustStoreSQLite", "MeterTrustStorePostgres",
                       "MeterTrustPKI", "MeterTrustFactory", "MeterTrustAudit", "MeterTrustQuorum", "MeterTrustAdmin",
                       "MeterTrustAdminAPI", "MeterTrustServer", "GRDB", "GRDBSQLite", "PostgresNIO", "Hummingbird",
                       "HummingbirdCore", "HummingbirdTLS"}

targets = {}
for target in package["targets"]:
    deps = []
    for dependency in target["dependencies"]:
        if "byName" in dependency:
            deps.append(dependency["byName"][0])
        elif "target" in dependency:
            deps.append(dependency["target"][0])
        elif "product" in dependency:
            name, pkg = dependency["product"][0], dependency["product"][1]
            deps.append(f"{name} ({pkg})")
    targets[target["name"]] = {"type": target["type"], "deps": deps}

findings = []

# The README table: rows `| \`Name\` | does | depends on |` in the Architecture section.
readme = (root / "README.md").read_text()
section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
rows = {}
for line in section.splitlines():
    match = re.match(r"^\| `([A-Za-z0-9]+)` \| .* \| ([^|]*) \|$", line)
    if match:
        listed = [item.strip() for item in match.group(2).split(",") if item.strip() and item.strip() != "—"]
        rows[match.group(1)] = listed

for name, target in targets.items():
    if target["type"] == "test":
        continue
    if name not in rows:
        findings.append(f"README Architecture: no row for target {name}")
        continue
    if sorted(rows[name]) != sorted(target["deps"]):
        findings.append(f"README Architecture: {name} depends on {', '.join(target['deps']) or '—'} in Package.swift, "
                        f"the README says {', '.join(rows[name]) or '—'}")
for name in rows:
    if name not in targets:
        findings.append(f"README Architecture: row {name} names no target of Package.swift")

def closure(name, seen=None):
    seen = set() if seen is None else seen
    for dependency in targets.get(name, {"deps": []})["deps"]:
        key = dependency.split(" (")[0]
        if key not in seen:
            seen.add(key)
            closure(key, seen)
    return seen

meter = closure(METER_SIDE)
for bad in sorted(meter & FORBIDDEN_FOR_METER):
    findings.append(f"{METER_SIDE}'s dependency closure holds {bad}")

# Imports against declarations.
ours = {name for name, t in targets.items() if t["type"] != "test"}
products = {d.split(" (")[0] for t in targets.values() for d in t["deps"] if " (" in d}
for name, target in targets.items():
    directory = root / ("Tests" if target["type"] == "test" else "Sources") / name
    declared = {d.split(" (")[0] for d in target["deps"]}
    for source in directory.rglob("*.swift"):
        text = source.read_text()
        if "@_exported" in text:
            findings.append(f"{source.relative_to(root)} uses @_exported")
        for imported in re.findall(r"^(?:@testable )?import (\w+)", text, re.M):
            if (imported in ours or imported in products) and imported != name and imported not in declared:
                findings.append(f"{source.relative_to(root)} imports {imported}, which {name} does not declare")

if findings:
    print("\n".join(findings))
    sys.exit(1)
print(f"architecture: {len(targets)} targets match the README; {METER_SIDE}'s closure: {', '.join(sorted(meter))}")

import ConfigFormats
import Synchronization
import Testing

@testable import PhoneCore

/// `ParameterTable` is the compact form of the `[String: Parameter]` it replaced: it must read the same.
@Suite("ParameterTable")
struct ParameterTableTests {
    @Test("random sets and removals read like a dictionary")
    func behavesLikeADictionary() {
        var model: [String: Parameter] = [:]
        var table: ParameterTable = [:]
        var random = SystemRandomNumberGenerator()
        let sources = ParameterSource.allCases
        let perms = ["", "!", "R", "!RW"]
        for step in 0..<3_000 {
            let name = "NAME_NUMBER_LONGER_THAN_SMALL_\(Int.random(in: 0..<200, using: &random))"
            if Int.random(in: 0..<4, using: &random) == 0 {
                model[name] = nil
                table[name] = nil
            } else {
                let p = Parameter(
                    name: name,
                    value: "v\(step)",
                    source: sources.randomElement(using: &random)!,
                    perm: perms.randomElement(using: &random)!,
                    access: step % 3 == 0 ? "A" : ""
                )
                model[name] = p
                table[name] = p
            }
            #expect(table[name] == model[name])
        }
        #expect(table.count == model.count)
        #expect(table.dictionary == model)
        #expect(table == ParameterTable(model))
        #expect(table.keys == model.keys.sorted())
        #expect(Dictionary(uniqueKeysWithValues: table.map { ($0.key, $0.value) }) == model)
        for (name, p) in model { #expect(table.value(name) == p.value && table.source(name) == p.source) }
    }

    @Test("the merge keeps the precedence rules: standard > product > master > initial, local edits on top")
    func mergeMatchesThePrecedenceRules() {
        func doc(_ pairs: [(String, String, String)], initial: [(String, String)] = []) -> ConfigDocument {
            ConfigDocument(
                format: .xml,
                initial: Dictionary(uniqueKeysWithValues: initial.map { ($0.0, ConfigEntry(name: $0.0, value: $0.1)) }),
                device: Dictionary(
                    uniqueKeysWithValues: pairs.map { ($0.0, ConfigEntry(name: $0.0, value: $0.1, perm: $0.2)) }
                )
            )
        }
        let files = [
            MergeInput(
                kind: .initial,
                document: doc([("A", "i", ""), ("I", "i", "")], initial: [("A", "ii")]),
                fresh: true
            ),
            MergeInput(kind: .master, document: doc([("A", "m", ""), ("M", "m", ""), ("E", "m", "!")]), fresh: true),
            MergeInput(kind: .product, document: doc([("A", "p", ""), ("P", "p", "")]), fresh: false),
            MergeInput(kind: .standard, document: doc([("A", "s", ""), ("K", "s", "!")]), fresh: false),
        ]
        let edits = [
            "K": LocalEdit(name: "K", value: "local", editedAt: PhoneTime(millisecondsSinceEpoch: 0)),
            "E": LocalEdit(name: "E", value: "local", editedAt: PhoneTime(millisecondsSinceEpoch: 0)),
            "N": LocalEdit(name: "N", value: "local", editedAt: PhoneTime(millisecondsSinceEpoch: 0)),
        ]
        let r = Merge.effective(files: files, localEdits: edits)
        #expect(r.parameters["A"]?.value == "s" && r.parameters["A"]?.source == .standard)
        #expect(r.parameters["P"]?.source == .product && r.parameters["M"]?.source == .master)
        #expect(r.parameters["I"]?.source == .initial)
        // K: perm "!" but from a saved copy: the local edit stays. E: fresh with "!": the provisioned value wins.
        #expect(r.parameters["K"]?.value == "local" && r.keptLocalEdits.contains("K"))
        #expect(r.parameters["E"]?.value == "m" && r.overriddenLocalEdits.map(\.name) == ["E"])
        #expect(r.parameters["N"]?.source == .local)
        #expect(r.shadowed["A"] == [.product, .master, .initial, .initial])  // both sections of the initial file
        #expect(r.countBySource == [.standard: 1, .product: 1, .master: 2, .initial: 1, .local: 2])
        let quiet = Merge.effective(files: files, localEdits: edits, recordShadowed: false)
        #expect(quiet.parameters == r.parameters && quiet.shadowed.isEmpty)
    }

    @Test("a table layered over a shared base reads and changes exactly like the flat table")
    func layeredTableBehavesLikeTheFlatOne() {
        var random = SystemRandomNumberGenerator()
        func table(_ seed: Int) -> [String: Parameter] {
            var d: [String: Parameter] = [:]
            for k in 0..<300 where (k + seed) % 29 != 0 {
                let name = k % 2 == 0 ? "N\(k)" : "A_LONG_PARAMETER_NAME_\(k)"
                let value = k % 10 == 0 ? "phone \(seed) value \(k)" : "shared value \(k)"
                d[name] = Parameter(name: name, value: value, source: k % 3 == 0 ? .standard : .product)
            }
            return d
        }
        let base = ParameterTable(table(0)).makeBase()
        for seed in [0, 1, 2, 3] {
            var model = table(seed)
            let flat = ParameterTable(model)
            var layered = flat.layered(over: base)
            #expect(layered.base === base && layered.entries.count < flat.count / 4)
            #expect(layered == flat && flat == layered && layered.hashValue == flat.hashValue)
            #expect(layered.count == model.count && layered.dictionary == model && layered.keys == flat.keys)
            #expect(Array(layered.map(\.key)) == model.keys.sorted())
            for step in 0..<500 {
                let name = "N\(Int.random(in: 0..<320, using: &random) / 2 * 2)"
                if Int.random(in: 0..<3, using: &random) == 0 {
                    model[name] = nil
                    layered[name] = nil
                } else {
                    let p = Parameter(name: name, value: "edit \(step)", source: .local, perm: step % 4 == 0 ? "!" : "")
                    model[name] = p
                    layered[name] = p
                }
                #expect(layered[name] == model[name])
            }
            #expect(layered.count == model.count && layered.dictionary == model && layered == ParameterTable(model))
            for (name, p) in model { #expect(layered.value(name) == p.value && layered.source(name) == p.source) }
        }
    }

    @Test("a phone's file merged over the shared files and layered over the base in one walk: the result made by hand")
    func mergedAndLayeredInOneWalk() {
        typealias Entry = ParameterTable.Entry
        var mix = SplitMix64(seed: 0xBA5E)
        let names = (0..<90).map { "NAME_\($0 % 7)_\($0)" }.sorted()
        // A run's entries carry their attribute pair's number; the merge adds the source (the shared files' merge
        // has theirs).
        let sources = [ParameterSource.product, .master].map { UInt32($0.caseNumber) }
        func entries(_ share: Int, values: Int, sourced: Bool = true) -> ContiguousArray<Entry> {
            ContiguousArray(
                names.filter { _ in mix.below(100) < share }.map { name in
                    let source = sourced ? sources[mix.below(2)] : 0
                    return Entry(name: name, value: "v\(mix.below(values))", bits: UInt32(mix.below(3)) << 8 | source)
                }
            )
        }
        var layered = 0
        var flat = 0
        let plans = MergePlans()
        let source = UInt32(ParameterSource.standard.caseNumber)
        /// `strong` over `weak` by name, made by hand: a name in both takes `strong`'s entry, `source` added.
        func merged(_ strong: ContiguousArray<Entry>, _ weak: ContiguousArray<Entry>) -> [String: Entry] {
            var model: [String: Entry] = [:]
            for e in weak { model[e.name] = e }
            for e in strong { model[e.name] = Entry(name: e.name, value: e.value, bits: e.bits | source) }
            return model
        }
        /// One walk (with the plans kept from the call before) against the merged table and its differences from
        /// the base, each made by hand.
        func check(
            _ strong: ContiguousArray<Entry>,
            _ weak: ContiguousArray<Entry>,
            _ base: ParameterTable.Base,
            _ label: String
        ) {
            // The merged table.
            let model = merged(strong, weak)
            let whole = ParameterTable(sortedEntries: ContiguousArray(model.values.sorted { $0.name < $1.name }))
            // Its differences from the base: the names the base lacks, the base's names it lacks (removed), and
            // the base's names whose entry differs (the base's copy of the name); flat when more than half its own.
            let baseByName = Dictionary(uniqueKeysWithValues: base.entries.map { ($0.name, $0) })
            var differences = ContiguousArray<Entry>()
            for name in Set(model.keys).union(baseByName.keys).sorted() {
                switch (model[name], baseByName[name]) {
                case (let e?, nil): differences.append(e)
                case (nil, let b?): differences.append(Entry(name: b.name, value: "", bits: ParameterTable.removedBits))
                case (let e?, let b?) where e != b:
                    differences.append(Entry(name: b.name, value: e.value, bits: e.bits))
                default: break
                }
            }
            let keptLayered = differences.count <= whole.count / 2
            #expect((whole.layered(over: base).base === base) == keptLayered, "\(label): layered(over:)")
            var bySource = [Int](repeating: 0, count: ParameterSource.allCases.count)
            let oneWalk = ParameterTable.merged(
                strong,
                source: source,
                over: weak,
                layeredOver: base,
                plans: plans,
                bySource: &bySource
            )
            if let oneWalk {
                layered += 1
                #expect(keptLayered, "\(label): layered, though more than half its own")
                #expect(oneWalk.base === base && oneWalk.count == whole.count, "\(label)")
                #expect(oneWalk.entries == differences, "\(label)")
                #expect(oneWalk == whole, "\(label)")
                var expected = [Int](repeating: 0, count: ParameterSource.allCases.count)
                for e in whole.entries { expected[Int(e.bits & 0xFF)] += 1 }
                #expect(bySource == expected, "\(label)")
            } else {
                flat += 1
                #expect(!keptLayered, "\(label): kept flat, though at most half its own")
            }
        }
        for round in 0..<2_000 {
            let strong = entries([10, 40, 70][round % 3], values: 3, sourced: false)
            let weak = entries([0, 30, 60][round / 3 % 3], values: 3)
            let model = merged(strong, weak)
            // The base: an earlier phone's table, this one with some entries changed, dropped or added.
            let change = [5, 25, 60][round / 9 % 3]
            var baseModel = model
            for name in names where mix.below(100) < change {
                switch mix.below(3) {
                case 0: baseModel[name] = nil
                case 1: baseModel[name] = Entry(name: name, value: "other", bits: sources[0])
                default: baseModel[name]?.bits ^= 1 << 8
                }
            }
            let base = ParameterTable.Base(ContiguousArray(baseModel.values.sorted { $0.name < $1.name }))
            check(strong, weak, base, "round \(round)")
            // The next phone: the same names with other values and attributes (the plan is taken)...
            var next = strong
            for index in next.indices where mix.below(2) == 0 {
                next[index].value = "w\(mix.below(3))"
                next[index].bits ^= 1 << 8
            }
            let reused = plans.reused.load(ordering: .relaxed)
            check(next, weak, base, "round \(round), same names")
            #expect(plans.reused.load(ordering: .relaxed) == reused + 1, "round \(round): the plan was not taken")
            // Each of these differs from the plan kept by the call before it in one thing, so it must not be taken:
            // one name of its own in place of one of the template's...
            let missing = names.filter { name in !strong.contains { $0.name == name } }
            if !next.isEmpty, !missing.isEmpty {
                var swapped = next
                swapped.remove(at: mix.below(swapped.count))
                swapped.append(Entry(name: missing[mix.below(missing.count)], value: "own", bits: 0))
                swapped.sort { $0.name < $1.name }
                check(swapped, weak, base, "round \(round), another name")
                check(next, weak, base, "round \(round), the template's names again")
            }
            // ...other shared files...
            let notShared = names.filter { name in !weak.contains { $0.name == name } }
            if !weak.isEmpty, !notShared.isEmpty {
                // As many entries, one name another.
                var otherWeak = weak
                let gone = otherWeak.remove(at: mix.below(otherWeak.count))
                otherWeak.append(Entry(name: notShared[mix.below(notShared.count)], value: "s", bits: gone.bits))
                otherWeak.sort { $0.name < $1.name }
                check(next, otherWeak, base, "round \(round), other shared files")
                check(next, weak, base, "round \(round), the shared files again")
            }
            // ...another base.
            let otherBase = ParameterTable.Base(ContiguousArray(base.entries.filter { _ in mix.below(4) != 0 }))
            check(next, weak, otherBase, "round \(round), another base")
        }
        #expect(layered > 600 && flat > 600)
    }

    @Test("the fleet's base is made from the first settled table; the ones before it are kept flat, eight at most")
    func baseFromTheFirstSettledTable() {
        func table(_ seed: Int) -> ParameterTable {
            var d: [String: Parameter] = [:]
            for k in 0..<100 {
                let name = "A_LONG_PARAMETER_NAME_\(k)"
                let value = k % 10 == 0 ? "value \(k) of table \(seed)" : "value \(k) of every table"
                d[name] = Parameter(name: name, value: value, source: .product)
            }
            return ParameterTable(d)
        }
        let shared = SharedPhoneState()
        for seed in 0..<3 {
            let kept = shared.parameters(table(seed), settled: false)
            #expect(kept.base == nil && kept == table(seed) && shared.base == nil)
        }
        let settled = shared.parameters(table(3), settled: true)
        let base = shared.base
        #expect(base != nil && settled.base === base && settled == table(3))
        #expect(base?.entries == table(3).flatEntries)
        // Later tables are layered over it, settled or not.
        #expect(shared.parameters(table(4), settled: false).base === base)
        // A fleet whose tables never settle makes its base from the first one after eight.
        let unsettled = SharedPhoneState()
        for seed in 0..<SharedPhoneState.unsettledTables {
            #expect(unsettled.parameters(table(seed), settled: false).base == nil)
        }
        let ninth = unsettled.parameters(table(8), settled: false)
        #expect(unsettled.base != nil && ninth.base === unsettled.base && ninth == table(8))
    }

    @Test("a body read against the template the reference is makes its delta from the changes, and gives it back")
    func savedBodyFromTemplateChanges() throws {
        func file(_ i: Int, extra: Bool = false) -> [UInt8] {
            var text = "<?xml version=\"1.0\"?>\n<PANASIPPhoneConfig>\n<!-- for phone \(i) -->\n"
            for k in 0..<60 {
                let value = k % 4 == 0 ? String(repeating: "own \(i) ", count: k % 3) : "common value \(k)"
                text += "<PARAMETER_\(k)>\(value)</PARAMETER_\(k)>\n"
            }
            if extra { text += "<EXTRA>x</EXTRA>\n" }
            return Array((text + "</PANASIPPhoneConfig>\n").utf8)
        }
        func template(_ bytes: [UInt8]) throws -> PlainXMLTemplate {
            let parsed = try ConfigParser.parseInFileOrder(
                bytes,
                file: "t",
                accepting: [.xml],
                limits: ConfigParser.defaultLimits
            )
            guard case .scanned(let scanned) = parsed else {
                throw ConfigFormatError(file: "t", reason: "not read by the scanner")
            }
            return try #require(scanned.template)
        }
        func read(_ bytes: [UInt8], like t: PlainXMLTemplate) throws -> [TemplateChange] {
            try #require(
                try ConfigParser.values(
                    bytes,
                    like: t,
                    file: "f",
                    accepting: [.xml],
                    limits: ConfigParser.defaultLimits
                )
            ).changes
        }
        let shared = SharedPhoneState()
        let first = file(0)
        let t = try template(first)
        _ = shared.savedBody(first, kind: .standard)  // the reference: the template's own bytes
        for i in 1..<6 {
            let bytes = file(i)
            let changes = try read(bytes, like: t)
            #expect(!changes.isEmpty)
            let saved = shared.savedBody(bytes, kind: .standard, known: .template(t.body, changes: changes))
            #expect(saved.bytes == bytes && saved.count == bytes.count)
            guard case .delta(_, let ops, _) = saved.storage else {
                Issue.record("phone \(i): not a delta")
                continue
            }
            #expect(ops == BodyDelta.encode(changes, of: bytes, referenceCount: first.count), "made from the changes")
        }
        // Against another template (a file with another layout took the first one's place): the body's differences
        // are looked for, until `templateReads` bodies were read against it; then the delta is made against that
        // template, one reference for every body read against it after.
        let other = try template(file(7, extra: true))
        var references: [DeltaReference] = []
        for i in 8..<(8 + SharedPhoneState.templateReads + 2) {
            let bytes = file(i, extra: true)
            let changes = try read(bytes, like: other)
            let saved = shared.savedBody(bytes, kind: .standard, known: .template(other.body, changes: changes))
            #expect(saved.bytes == bytes)
            guard case .delta(let reference, let ops, _) = saved.storage else {
                Issue.record("phone \(i): not a delta")
                continue
            }
            if i - 8 + 1 < SharedPhoneState.templateReads {
                #expect(reference.bytes == first && !reference.index.isEmpty, "phone \(i): searched, against the first")
            } else {
                #expect(reference.bytes == other.body && reference.index.isEmpty, "phone \(i)")
                #expect(ops == BodyDelta.encode(changes, of: bytes, referenceCount: other.body.count))
                references.append(reference)
            }
        }
        #expect(references.count == 3 && references.allSatisfy { $0 === references[0] })
        // The first template's bodies still go against the first reference.
        let back = shared.savedBody(
            file(11),
            kind: .standard,
            known: .template(t.body, changes: try read(file(11), like: t))
        )
        guard case .delta(let reference, _, _) = back.storage else {
            Issue.record("phone 11: not a delta")
            return
        }
        #expect(reference.bytes == first && back.bytes == file(11))
        // The memo's copy of a shared body: one copy of the whole reference.
        let product = file(100)
        _ = shared.savedBody(product, kind: .product)
        let memoCopy = product.map { $0 }  // other storage, the same bytes
        for _ in 0..<3 {
            let saved = shared.savedBody(product.map { $0 }, kind: .product, known: .same(memoCopy))
            #expect(saved.bytes == product)
            guard case .delta(_, let ops, _) = saved.storage else {
                Issue.record("the product file is not a delta")
                continue
            }
            #expect(ops == BodyDelta.copyAll(product.count))
        }
        // ... compared with the reference once and kept: the later bodies found in the memo are matched by storage.
        #expect(shared.comparedCopy(of: .product).map { BodyBytes.identical($0, memoCopy) } == true)
    }

    @Test("a saved body kept as a delta against a shared reference gives the same bytes back")
    func savedBodyDeltaRoundTrips() {
        func body(_ i: Int) -> [UInt8] {
            var text = "<?xml version=\"1.0\"?>\n<PANASIPPhoneConfig>\n"
            for k in 0..<150 {
                let value = k % 4 == 0 ? "own \(i * 7919 % 100_003) \(k)" : "common \(k)"
                text += "<PARAMETER_\(k % 20)_\(k)>\(value)</PARAMETER_\(k % 20)_\(k)>\n"
            }
            return Array((text + "</PANASIPPhoneConfig>\n").utf8)
        }
        let shared = SharedPhoneState()
        let first = shared.savedBody(body(0), kind: .standard)
        #expect(first.bytes == body(0))
        for i in 1..<20 {
            let saved = shared.savedBody(body(i), kind: .standard)
            #expect(saved.bytes == body(i) && saved.count == body(i).count)
            #expect(saved == SavedBody(body(i)) && saved.hashValue == SavedBody(body(i)).hashValue)
            if case .delta(_, let ops, _) = saved.storage {
                #expect(ops.count * 4 < body(i).count)
            } else {
                #expect(Bool(false))
            }
        }
        // Unrelated, tiny and empty bodies come back too.
        for other in [Array("plain text, nothing like the reference".utf8), [], Array(repeating: 0x41, count: 5000)] {
            #expect(shared.savedBody(other, kind: .standard).bytes == other)
        }
        var random = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            var mutated = body(3)
            for _ in 0..<Int.random(in: 1..<40, using: &random) {
                let at = Int.random(in: 0..<mutated.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: mutated[at] = UInt8.random(in: 0...255, using: &random)
                case 1: mutated.insert(UInt8.random(in: 0...255, using: &random), at: at)
                default: mutated.remove(at: at)
                }
            }
            #expect(shared.savedBody(mutated, kind: .standard).bytes == mutated)
        }
    }
}

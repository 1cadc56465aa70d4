// Export to the seed notebook's pickle: scripts/export_pickle.py turns a best.safetensors into the
// notebook's `FNN.load_model` layout (plus the BatchNorm running statistics under `*_running`
// keys). The tests train tiny runs on synthetic 8×8 data, export the best checkpoint, and check
// that the notebook's inference forward computed from the PICKLE alone (the script's `--forward`,
// NumPy float64) reproduces the logits of `dist-trainer evaluate --save-logits`; that the pickle has
// exactly the notebook's keys, shapes and dtype for the preset; that the notebook's load loop
// (emulated in a few lines, not copied) accepts it; and that bad input fails with one line.
//
// Needs python3 with numpy and safetensors (`python3 -m pip install safetensors numpy`); skipped
// (with the reason printed) when they are missing, unless SAFETENSORS_REQUIRED=1, which turns the
// skip into a failure. DIST_TRAINER_PYTHON overrides the interpreter (default: python3 on PATH).
import Formats
import Foundation
import TestSupport
import Training
import XCTest

final class ExportPickleTests: XCTestCase {
    /// Model 2's block structure with custom widths: the key names are numbered generically (which
    /// for three hidden blocks coincides with Model 2's names), and the script says so on stderr.
    func testModel2CustomHiddenExportReproducesSwiftLogits() throws {
        try roundTrip(model: 2, hidden: [16, 12, 8], blocks: [1, 2, 3], head: 4, dropout: [true, true, false])
    }

    /// Model 1's preset widths (64-128-64-10 on 8×8 images): the notebook's own names l1, bn1, l3,
    /// bn3, l4. Also the failure modes on this real checkpoint: a missing tensor, a missing file.
    func testModel1PresetExportReproducesSwiftLogits() throws {
        let tmp = try roundTrip(model: 1, hidden: nil, blocks: [1, 3], head: 4, dropout: [true, false])

        // A checkpoint lacking one tensor (rewritten by safetensors itself, metadata kept).
        let broken = tmp + "/broken.safetensors"
        let rewrite = try python(["-c", """
            import sys
            from safetensors import safe_open
            from safetensors.numpy import load_file, save_file
            src, dst = sys.argv[1:3]
            tensors = load_file(src)
            with safe_open(src, framework="np") as f:
                metadata = f.metadata()
            del tensors["layers.1.bn.running_var"]
            save_file(tensors, dst, metadata=metadata)
            """, tmp + "/run/best.safetensors", broken])
        XCTAssertEqual(rewrite.status, 0, rewrite.stderr)
        try assertFailsWithOneLine([broken, tmp + "/broken.pkl"], mentioning: "missing tensor layers.1.bn.running_var")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/broken.pkl"))
        try assertFailsWithOneLine([tmp + "/no-such.safetensors", tmp + "/x.pkl"], mentioning: "cannot read")
    }

    /// A safetensors file that is not a dist-trainer checkpoint: exit 1, one line on stderr, no pickle.
    func testRejectsForeignSafetensors() throws {
        try requirePython()
        let tmp = try temporaryDirectory(self, "export-pickle")
        let foreign = tmp + "/foreign.safetensors"
        let write = try python(["-c", """
            import sys
            import numpy as np
            from safetensors.numpy import save_file
            save_file({"weight": np.zeros((3, 2), dtype=np.float32)}, sys.argv[1], metadata={"format": "pt"})
            """, foreign])
        XCTAssertEqual(write.status, 0, write.stderr)
        try assertFailsWithOneLine([foreign, tmp + "/out.pkl"], mentioning: "not a dist-trainer checkpoint")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/out.pkl"))

        // Not safetensors at all.
        try Data("not a checkpoint\n".utf8).write(to: URL(fileURLWithPath: tmp + "/garbage.safetensors"))
        try assertFailsWithOneLine([tmp + "/garbage.safetensors", tmp + "/out.pkl"], mentioning: "not a readable safetensors file")
    }

    // MARK: - The round trip

    /// Trains a tiny run, exports its best checkpoint, and checks the pickle against the Swift
    /// logits and the notebook's layout. `blocks`/`head` are the expected notebook layer numbers.
    /// Returns the temporary directory (data in data/, run in run/).
    @discardableResult
    func roundTrip(model: Int, hidden: [Int]?, blocks: [Int], head: Int, dropout: [Bool]) throws -> String {
        try requirePython()
        let tmp = try temporaryDirectory(self, "export-pickle")
        let data = tmp + "/data", run = tmp + "/run"
        try writeSyntheticDataset(to: data)
        var args = ["train", "--data-dir", data, "--run-dir", run, "--model", String(model),
                    "--epochs", "2", "--batch-size", "50", "--lr", "0.01", "--threads", "1"]
        if let hidden { args += ["--hidden", hidden.map(String.init).joined(separator: ",")] }
        let train = try runTrainer(args, timeout: 120)
        XCTAssertEqual(train.status, 0, train.stderr)
        let best = run + "/best.safetensors"
        guard train.status == 0, FileManager.default.fileExists(atPath: best) else {
            XCTFail("training wrote no \(best)")
            return tmp
        }

        // Export.
        let pkl = tmp + "/model.pkl"
        let export = try python([Self.scriptPath, best, pkl])
        XCTAssertEqual(export.status, 0, export.stderr)
        let summary = export.stdout.split(separator: "\n")
        XCTAssertEqual(summary.count, 1, export.stdout)
        XCTAssertTrue(summary.first?.hasPrefix("wrote \(pkl): ") ?? false, export.stdout)
        if hidden == nil {
            XCTAssertEqual(export.stderr, "", "a preset checkpoint exports without notes")
        } else {
            XCTAssertTrue(export.stderr.contains("numbered generically"), export.stderr)
            XCTAssertEqual(export.stderr.split(separator: "\n").count, 1, export.stderr)
        }

        // The Swift logits of the test split, and the notebook forward from the pickle.
        let swiftLogits = tmp + "/swift.npy", pythonLogits = tmp + "/python.npy"
        let evaluate = try runTrainer(["evaluate", "--checkpoint", best, "--data-dir", data,
                                       "--save-logits", swiftLogits, "--json", "--threads", "1"], timeout: 60)
        XCTAssertEqual(evaluate.status, 0, evaluate.stderr)
        let images = data + "/t10k-images-idx3-ubyte.gz"
        let forward = try python([Self.scriptPath, "--forward", pkl, "--images", images, "--out", pythonLogits])
        XCTAssertEqual(forward.status, 0, forward.stderr)
        XCTAssertEqual(forward.stderr, "")
        guard export.status == 0, evaluate.status == 0, forward.status == 0 else { return tmp }

        // Compare, and check the pickle's structure.
        let widths = [64] + (hidden ?? (model == 1 ? [128, 64] : model == 2 ? [512, 128, 64] : [512, 128, 64, 32])) + [10]
        let spec: [String: Any] = ["blocks": blocks, "head": head, "widths": widths, "dropout": dropout]
        let specJSON = String(decoding: try JSONSerialization.data(withJSONObject: spec), as: UTF8.self)
        let check = try python(["-c", Self.checker, pkl, best, swiftLogits, pythonLogits, images, specJSON])
        XCTAssertEqual(check.status, 0, check.stderr)
        guard let line = check.stdout.split(separator: "\n").last,
              let result = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            XCTFail("checker printed no result: \(check.stdout) \(check.stderr)")
            return tmp
        }
        let problems = result["problems"] as? [String] ?? ["no problems list"]
        XCTAssertEqual(problems, [], "pickle structure")
        let relative = result["relative_error"] as? Double ?? .infinity
        XCTAssertLessThanOrEqual(relative, 1e-5, "max |python − swift| / max |swift| (measured ~4e-7; an epsilon of 1e-5 instead of 1e-7 gives ~2e-5)")
        XCTAssertEqual(result["argmax_disagreements"] as? Int, 0, "argmax differs beyond near-ties")
        XCTAssertEqual(result["samples"] as? Int, 200)
        XCTAssertLessThanOrEqual(result["notebook_relative_error"] as? Double ?? .infinity, 1e-6,
                                 "the emulated notebook forward disagrees with the script's --forward")
        print("ExportPickleTests: Model \(model) \(widths.map(String.init).joined(separator: "-")): "
              + "max relative logit error \(relative), argmax agreement \(result["argmax_agreement"] ?? "?")")
        return tmp
    }

    /// Inline checker: argv = pickle, checkpoint, swift.npy, python.npy, images IDX, spec JSON
    /// {"blocks", "head", "widths", "dropout"}; prints one JSON object.
    static let checker = """
        import gzip, json, pickle, sys
        import numpy as np
        from safetensors.numpy import load_file

        pkl, ckpt, swift_npy, python_npy, images, spec = sys.argv[1:7]
        spec = json.loads(spec)
        blocks, head, widths, dropout = spec["blocks"], spec["head"], spec["widths"], spec["dropout"]
        problems = []
        with open(pkl, "rb") as f:
            data = pickle.load(f)
        layer_keys = [k for n in blocks for k in (f"l{n}", f"bn{n}")] + [f"l{head}"]
        running_keys = [f"bn{n}_running" for n in blocks] + ["input_transform"]

        # Structure: exact key set, (w, b) tuples, float64, the notebook's shapes.
        def check(key, shapes):
            v = data.get(key) if isinstance(data, dict) else None
            if not (isinstance(v, tuple) and len(v) == 2):
                problems.append(f"{key}: not a (w, b) tuple but {type(v).__name__}")
                return
            for name, a, shape in zip(("w", "b"), v, shapes):
                if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.shape != shape:
                    problems.append(f"{key}.{name}: {getattr(a, 'dtype', type(a).__name__)} "
                                    f"{getattr(a, 'shape', None)}, expected float64 {shape}")
        if not isinstance(data, dict):
            problems.append(f"pickle holds {type(data).__name__}, not dict")
        elif set(data) != set(layer_keys + running_keys):
            problems.append(f"keys {sorted(data)}, expected {sorted(layer_keys + running_keys)}")
        for i, n in enumerate(blocks):
            fan_in, fan_out = widths[i], widths[i + 1]
            check(f"l{n}", [(fan_in, fan_out), (1, fan_out)])
            check(f"bn{n}", [(1, fan_out), (1, fan_out)])
            check(f"bn{n}_running", [(1, fan_out), (1, fan_out)])
        check(f"l{head}", [(widths[-2], widths[-1]), (1, widths[-1])])
        check("input_transform", [(1, widths[0]), (1, widths[0])])
        if structure_ok := not problems:
            shift, scale = data["input_transform"]
            if not (np.all(shift == 0) and np.all(scale == np.float64(np.float32(1) / np.float32(255)))):
                problems.append("input_transform of image data is not (0, 1/255)")

        structure_ok = not problems

        # Values: exactly the checkpoint's float32 numbers, widened.
        if structure_ok:
            t = load_file(ckpt)
            pairs = [(f"l{head}", 0, "head.weight"), (f"l{head}", 1, "head.bias")]
            for i, n in enumerate(blocks):
                pairs += [(f"l{n}", 0, f"layers.{i}.dense.weight"), (f"l{n}", 1, f"layers.{i}.dense.bias"),
                          (f"bn{n}", 0, f"layers.{i}.bn.weight"), (f"bn{n}", 1, f"layers.{i}.bn.bias"),
                          (f"bn{n}_running", 0, f"layers.{i}.bn.running_mean"),
                          (f"bn{n}_running", 1, f"layers.{i}.bn.running_var")]
            for key, j, name in pairs:
                if not np.array_equal(data[key][j].reshape(t[name].shape), t[name].astype(np.float64)):
                    problems.append(f"{key}[{j}] differs from {name}")

        # The notebook's load loop, emulated on stand-in layers of the notebook's shapes and order
        # (Dense w/b, ReLU and Dropout without parameters, BatchNorm w/b plus running statistics).
        class Layer:
            def __init__(self, kind, **fields):
                self.kind = kind
                self.__dict__.update(fields)
        layers = {}
        for i, n in enumerate(blocks):
            d = widths[i + 1]
            layers[f"l{n}"] = Layer("dense", w=np.zeros((widths[i], d)), b=np.zeros((1, d)))
            layers[f"rel{n}"] = Layer("relu")
            layers[f"bn{n}"] = Layer("bn", w=np.ones((1, d)), b=np.zeros((1, d)),
                                     running_mean=np.zeros((1, d)), running_var=np.ones((1, d)))
            if dropout[i]:
                layers[f"drp{n}"] = Layer("dropout")
        layers[f"l{head}"] = Layer("dense", w=np.zeros((widths[-2], widths[-1])), b=np.zeros((1, widths[-1])))
        initial = {k: (l.w.shape, l.b.shape) for k, l in layers.items() if hasattr(l, "w")}
        nb_logits = None
        if structure_ok:
            for k, layer in layers.items():
                if k in data:
                    layer.w, layer.b = data[k]
            for k, shapes in initial.items():
                if k not in data:
                    problems.append(f"notebook layer {k} is not in the pickle")
                elif (layers[k].w.shape, layers[k].b.shape) != shapes:
                    problems.append(f"notebook layer {k}: loaded {layers[k].w.shape}/{layers[k].b.shape}, built {shapes}")
            unused = set(data) - set(initial) - set(running_keys)
            if unused:
                problems.append(f"pickle keys no notebook layer reads: {sorted(unused)}")
            for n in blocks:  # the restore documented in the script
                layers[f"bn{n}"].running_mean, layers[f"bn{n}"].running_var = data[f"bn{n}_running"]
            raw = gzip.open(images).read()
            count = int.from_bytes(raw[4:8], "big")
            x = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, -1) / 255.0
            for layer in layers.values():  # inference: running statistics, dropout off
                if layer.kind == "dense":
                    x = x @ layer.w + layer.b
                elif layer.kind == "relu":
                    x = np.maximum(x, 0)
                elif layer.kind == "bn":
                    x = layer.w * (x - layer.running_mean) / np.sqrt(layer.running_var + 1e-7) + layer.b
            nb_logits = x

        # Logits: the script's forward from the pickle against dist-trainer evaluate.
        a = np.load(python_npy).astype(np.float64)
        b = np.load(swift_npy).astype(np.float64)
        result = {"samples": int(b.shape[0])}
        if a.shape != b.shape or b.ndim != 2:
            problems.append(f"logits shapes: python {a.shape}, swift {b.shape}")
        else:
            scale = np.abs(b).max()
            result["relative_error"] = float(np.abs(a - b).max() / scale)
            pa, pb = a.argmax(1), b.argmax(1)
            rows = np.arange(b.shape[0])
            margin = b[rows, pb] - b[rows, pa]  # how far Swift prefers its class over Python's
            result["argmax_agreement"] = float((pa == pb).mean())
            result["argmax_disagreements"] = int(((pa != pb) & (margin > 1e-5 * scale)).sum())
            if nb_logits is not None:
                result["notebook_relative_error"] = float(np.abs(nb_logits - a).max() / np.abs(nb_logits).max())
        result["problems"] = problems
        print(json.dumps(result))
        """

    // MARK: - Python

    static let scriptPath = repositoryPath("scripts/export_pickle.py")

    func requirePython() throws {
        try requirePython(["numpy", "safetensors.numpy"], install: ["numpy", "safetensors"], script: Self.scriptPath,
                          requiredEnv: "SAFETENSORS_REQUIRED", feature: "python with safetensors")
    }

    func python(_ arguments: [String]) throws -> RunResult {
        try Python.run(arguments, timeout: 120)
    }

    /// The export of `arguments` exits 1, prints nothing on stdout and exactly one line on stderr
    /// containing `text`.
    func assertFailsWithOneLine(_ arguments: [String], mentioning text: String,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try python([Self.scriptPath] + arguments)
        XCTAssertEqual(r.status, 1, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stdout, "", file: file, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.contains(text), "stderr lacks '\(text)': \(r.stderr)", file: file, line: line)
    }
}

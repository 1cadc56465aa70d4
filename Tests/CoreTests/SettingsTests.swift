// SettingsTests: the one description of a run's settings (TrainingConfig) and the rules that put
// them together — recipe files, complete checkpoint settings, the merge of given settings for a new
// and a resumed run — against hand-written expectations.
@testable import CoreSupport
import Foundation
@testable import Model
@testable import Training
import XCTest

final class SettingsTests: XCTestCase {
    /// The reflected keys are exactly the keys JSONEncoder writes (with every optional set), so a
    /// new property is a setting in files, merges and flags at once.
    func testSettingKeysAreTheEncodedKeys() throws {
        var full = TrainingConfig()
        full.hidden = [8]
        full.normalize = .standard
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let object = try JSONSerialization.jsonObject(with: encoder.encode(full)) as! [String: Any]
        XCTAssertEqual(Set(object.keys), Set(TrainingConfig.settingKeys))
        XCTAssertEqual(TrainingConfig.settingKeys.count, Mirror(reflecting: full).children.count)
        XCTAssertEqual(TrainingConfig.optionalKeys, ["hidden", "normalize"])
        XCTAssertEqual(settingKey("learningRates"), "learning_rates")
    }

    func testRecipeTakesDefaultsForMissingSettingsAndRefusesUnknownKeys() throws {
        let c = try TrainingConfig(recipe: ["batch_size": 64, "lr_schedule": "cosine", "learning_rates": [0.01, 0.002]])
        var expected = TrainingConfig()
        expected.batchSize = 64
        expected.lrSchedule = .cosine
        expected.learningRates = [0.01, 0.002]
        XCTAssertEqual(c, expected)
        XCTAssertEqual(try TrainingConfig(recipe: [:]), TrainingConfig())
        XCTAssertThrowsError(try TrainingConfig(recipe: ["batchsize": 64])) { error in
            XCTAssertEqual(error as? SettingError, SettingError("batchsize", "not a setting (the closest is `batch_size`)"))
        }
        XCTAssertThrowsError(try TrainingConfig(recipe: ["warmup_epoch": 1])) { error in
            XCTAssertEqual((error as? SettingError)?.problem, "not a setting (the closest is `warmup_epochs`)")
        }
        XCTAssertThrowsError(try TrainingConfig(recipe: ["epochs": "ten"])) { error in
            XCTAssertEqual(error as? SettingError, SettingError("epochs", "expected an integer"))
        }
        XCTAssertThrowsError(try TrainingConfig(recipe: ["optimizer": "sgd"])) { error in
            XCTAssertEqual((error as? SettingError)?.setting, "optimizer")
        }
    }

    /// A checkpoint's settings must all be there: a missing seed would silently resume another run.
    func testCompleteSettingsRefuseAMissingOne() throws {
        var object = TrainingConfig().settingObject()
        XCTAssertEqual(try TrainingConfig(complete: object), TrainingConfig(), "hidden may be absent: it is not set")
        object["hidden"] = [16, 8]
        XCTAssertEqual(try TrainingConfig(complete: object).hidden, [16, 8])
        for key in ["seed", "accumulate", "learning_rates"] {
            var partial = object
            partial[key] = nil
            XCTAssertThrowsError(try TrainingConfig(complete: partial), key) { error in
                XCTAssertEqual(error as? SettingError, SettingError(key, "missing (a complete description of a run holds every setting)"))
            }
        }
        object["momentum"] = 0.9
        XCTAssertThrowsError(try TrainingConfig(complete: object)) { XCTAssertEqual(($0 as? SettingError)?.setting, "momentum") }
    }

    func testMergingForANewRun() throws {
        var base = TrainingConfig()
        base.weightDecay = 0.05  // as a recipe file would set it
        let merged = try base.merging(["epochs": 3, "learning_rates": [0.02], "augment_shift": 2, "batch_norm": BatchNormMode.local])
        XCTAssertEqual(merged.epochs, 3)
        XCTAssertEqual(merged.learningRates, [0.02])
        XCTAssertEqual(merged.augmentShift, 2)
        XCTAssertEqual(merged.batchNorm, .local)
        XCTAssertEqual(merged.weightDecay, 0.05, "settings not given keep the base's")
        XCTAssertThrowsError(try base.merging(["learning_rate": [0.1]])) { XCTAssertEqual(($0 as? SettingError)?.problem, "not a setting (the closest is `learning_rates`)") }
        XCTAssertThrowsError(try base.merging(["dropout": Double.nan])) { XCTAssertEqual(($0 as? SettingError)?.setting, "dropout") }
    }

    /// A resumed run keeps its settings: the same value again is fine, another is refused naming
    /// both, and only epochs may change — upwards.
    func testMergingForAResumedRun() throws {
        var saved = TrainingConfig()
        saved.epochs = 4
        saved.hidden = [32, 16]
        XCTAssertEqual(try saved.merging(["epochs": 9], resuming: "runs/a").epochs, 9)
        XCTAssertEqual(try saved.merging(["epochs": 4, "seed": UInt64(12), "hidden": [32, 16]], resuming: "runs/a"), saved)
        XCTAssertThrowsError(try saved.merging(["epochs": 3], resuming: "runs/a")) { error in
            XCTAssertEqual(error as? SettingError, SettingError("epochs", "given 3, but the run in runs/a was trained with 4; it may only be raised"))
        }
        XCTAssertThrowsError(try saved.merging(["learning_rates": [0.01, 0.001]], resuming: "runs/a")) { error in
            XCTAssertEqual(error as? SettingError, SettingError(
                "learning_rates", "given 0.01,0.001, but the run in runs/a was trained with 0.005,0.001,0.0005,0.0001; a resumed run keeps its settings (only `epochs` may be raised)"))
        }
        for (key, value) in [("seed", UInt64(13)), ("hidden", [32, 8]), ("batch_size", 64), ("precision", "bf16"), ("accumulate", 2)] as [(String, any Encodable)] {
            XCTAssertThrowsError(try saved.merging([key: value], resuming: "runs/a"), key) { XCTAssertEqual(($0 as? SettingError)?.setting, key) }
        }
        // For a new run the same changes are allowed.
        XCTAssertEqual(try saved.merging(["epochs": 3, "seed": UInt64(13)]).seed, 13)
    }

    func testSettingErrorsNameSettingsTheWayTheirPresenterDoes() {
        let e = SettingError("warmup_epochs", "expected 0 to `epochs` (10), found 20.0")
        XCTAssertEqual(e.description, "warmup_epochs: expected 0 to epochs (10), found 20.0")
        XCTAssertEqual(e.presented { "--" + $0.replacingOccurrences(of: "_", with: "-") }, "--warmup-epochs: expected 0 to --epochs (10), found 20.0")
        XCTAssertEqual(SettingError("a", "one `b` and `c`, then `").presented { $0.uppercased() }, "A: one B and C, then `")
    }

    func testValidationNamesTheSetting() {
        var c = TrainingConfig()
        c.augmentFlip = true
        XCTAssertThrowsError(try c.validateValues()) { XCTAssertEqual($0 as? SettingError, SettingError("augment_flip", "needs random shifts too (`augment_shift` > 0)")) }
        c = TrainingConfig()
        c.epochs = 0
        XCTAssertThrowsError(try c.validateValues()) { XCTAssertEqual(($0 as? SettingError)?.setting, "epochs") }
        XCTAssertThrowsError(try TrainingConfig().validate(trainingSamples: 100, ranks: 1)) {
            XCTAssertEqual($0 as? SettingError, SettingError("batch_size", "128 is larger than the training split (100 samples)"))
        }
    }

    func testDefaultsAsTheyAreWritten() {
        XCTAssertEqual(TrainingConfig.defaultText("learning_rates"), "0.005,0.001,0.0005,0.0001")
        XCTAssertEqual(TrainingConfig.defaultText("optimizer"), "adam")
        XCTAssertEqual(TrainingConfig.defaultText("augment_flip"), "false")
        XCTAssertEqual(TrainingConfig.defaultText("hidden"), "none")
        XCTAssertEqual(TrainingConfig.defaultText("batch_size"), "128")
        XCTAssertEqual(editDistance("batchsize", "batch_size"), 1)
        XCTAssertEqual(editDistance("", "abc"), 3)
        XCTAssertEqual(editDistance("kitten", "sitting"), 3)
    }
}

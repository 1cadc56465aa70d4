// TrainingObserverTests: what the training loop reports to rank 0's observer, by hand.
@testable import Training
import XCTest

final class TrainingObserverTests: XCTestCase {
    /// The ETA counts the samples of an optimizer step, which with accumulation are K minibatches:
    /// 60 steps left × 256 samples at 1000 samples/s is 15.36 s (not the 7.68 s that counting one
    /// minibatch of 128 per step gives).
    func testSecondsLeftCountTheSamplesOfAStep() {
        let report = StepReport(epoch: 1, step: 40, steps: 100, samplesPerStep: 256, runStep: 40, loss: 0.5, lossSoFar: 0.6,
                                learningRate: 0.001, samplesPerSecond: 1000)
        XCTAssertEqual(report.secondsLeftInEpoch, 15.36, accuracy: 1e-12)
        var last = report
        last.step = 100
        XCTAssertEqual(last.secondsLeftInEpoch, 0)
    }
}

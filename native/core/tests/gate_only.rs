//! init 'moments'' EM stage with the expert slopes fixed (`moe_core::gate_only_em`; its agreement with the
//! TypeScript reference is test/parity.test.ts's): it never increases the objective, it leaves the slopes
//! alone, the thread count never changes a bit, and models it is not for are coded errors.

mod common;

use common::*;
use moe_core::model::Layout;
use moe_core::*;

/// Slopes from a short EM fit, with the gate reset to zero and the intercepts to zero: a start like the
/// moments' (right directions, uniform mixing).
fn start(pr: &Problem) -> Vec<f64> {
    let b = CpuBackend::new(pr.data(), 1).unwrap();
    let spec = FitSpec { max_iter: 3, tol: 0.0, ..FitSpec::default() };
    let mut params = fit(&b, &pr.model, &spec, 4, None, None, &mut |_| Control::Continue).unwrap().params;
    let lay = Layout::new(&pr.model);
    params[..lay.coef].iter_mut().for_each(|v| *v = 0.0);
    for j in 0..pr.model.k {
        params[lay.coef + j * pr.d] = 0.0;
    }
    params
}

#[test]
fn the_objective_never_increases_and_the_slopes_stay() {
    for (solver, weighted, noise) in [(Solver::Newton, false, Noise::Fitted), (Solver::NewtonCg, true, Noise::Fitted),
                                      (Solver::Newton, true, Noise::Known(0.5))] {
        let mut pr = problem(ExpertKind::Linear, false, 3, 500, 3, 71, weighted);
        pr.model.noise = noise;
        pr.model.ridge = 0.05;
        let mut spec = FitSpec::default();
        spec.mstep.solver = solver;
        let before = start(&pr);
        let b = CpuBackend::new(pr.data(), 2).unwrap();
        let mut after = before.clone();
        gate_only_em(&b, &pr.model, &spec, &mut after).unwrap();
        let objective = |p: &[f64]| evaluate(&b, &pr.model, p).unwrap().1;
        assert!(objective(&after) <= objective(&before), "{solver:?}: {} > {}", objective(&after), objective(&before));
        let lay = Layout::new(&pr.model);
        for j in 0..pr.model.k {
            let slopes = lay.coef + j * pr.d + 1..lay.coef + (j + 1) * pr.d;
            assert_eq!(after[slopes.clone()], before[slopes], "{solver:?}: expert {j}'s slopes moved");
        }
        assert_ne!(after[..lay.coef], before[..lay.coef], "{solver:?}: the gate did not move");
        if noise == Noise::Known(0.5) {
            assert_eq!(after[lay.sigma2.unwrap()..], before[lay.sigma2.unwrap()..], "known noise changed");
        }

        let mut one_thread = before.clone();
        gate_only_em(&CpuBackend::new(pr.data(), 1).unwrap(), &pr.model, &spec, &mut one_thread).unwrap();
        assert_eq!(one_thread, after, "{solver:?}: threads changed the result");
    }
}

#[test]
fn models_it_is_not_for_are_coded_errors() {
    let spec = FitSpec::default();
    for (experts, symmetric) in [(ExpertKind::Logistic, false), (ExpertKind::Linear, true)] {
        let pr = problem(experts, symmetric, 2, 50, 2, 72, false);
        let b = CpuBackend::new(pr.data(), 1).unwrap();
        let mut params = random_params(&pr.model, 3);
        let e = gate_only_em(&b, &pr.model, &spec, &mut params).unwrap_err();
        assert_eq!(e.code, ErrorCode::Option, "{experts:?} symmetric {symmetric}");
    }
    let pr = problem(ExpertKind::Linear, false, 2, 50, 2, 73, false);
    let b = CpuBackend::new(pr.data(), 1).unwrap();
    let mut short = vec![0.0; 3];
    assert_eq!(gate_only_em(&b, &pr.model, &spec, &mut short).unwrap_err().code, ErrorCode::Shape);
}

package steps

// The steps, in one place: what apply and remove run, in order, and what each
// step declares beside its methods (kind's create.go lists its actions so).
//
// A step may also say:
//   - Skippable: the operator may skip it after it failed, because later steps
//     can do without it (the cluster has what it would make, or the operator
//     wants to look at the VM first);
//   - ReadOnly: it only reads; the runner counts it as checked, not as a step
//     that ran (so a run of only such steps says nothing changed).

// ClusterSteps are the cluster half of the procedure, in order.
func ClusterSteps() []Step {
	return []Step{ControlPlane{}, EastWestGateway{}, ExposeIstiod{}, Namespace{}, WorkloadGroup{}, VMFiles{}}
}

// VMSteps are the VM half of the procedure, in order: the package first, as its
// post-install makes the user and directories the files need.
func VMSteps() []Step {
	return []Step{VMPreflight{}, VMPackage{}, VMPlaceFiles{}, VMStart{}, VMVerify{}}
}

// RemoveClusterSteps are the cluster half of remove, in order; all adds the
// objects that expose istiod.
func RemoveClusterSteps(all bool) []Step {
	list := []Step{RemoveWorkloadEntry{}, RemoveWorkloadGroup{}, RemoveNamespace{}}
	if all {
		list = append(list, RemoveExposure{}, RemoveEastWest{})
	}
	return list
}

// RemoveVMSteps are the VM half of remove, in order.
func RemoveVMSteps() []Step {
	return []Step{RemoveAgent{}, RemoveIptables{}, RemoveVMFiles{}, RemovePackage{}, RemoveHostsLine{}, RemoveVMState{}}
}

func (ControlPlane) Skippable() bool    { return true }
func (EastWestGateway) Skippable() bool { return true }
func (ExposeIstiod) Skippable() bool    { return true }
func (VMVerify) Skippable() bool        { return true }

func (VMPreflight) ReadOnly() bool { return true }

package ui

import "charm.land/lipgloss/v2"

// Styles are in one place; NO_COLOR and ASCII terminals are handled by
// lipgloss's colour profile when the view is rendered.
var (
	titleStyle  = lipgloss.NewStyle().Bold(true)
	dimStyle    = lipgloss.NewStyle().Foreground(lipgloss.Color("8"))
	okStyle     = lipgloss.NewStyle().Foreground(lipgloss.Color("2"))
	failStyle   = lipgloss.NewStyle().Foreground(lipgloss.Color("1"))
	warnStyle   = lipgloss.NewStyle().Foreground(lipgloss.Color("3"))
	selectStyle = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("6"))
	boxStyle    = lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).Padding(0, 1)
	helpStyle   = dimStyle
)

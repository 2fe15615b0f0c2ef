package ui

import (
	"image/color"

	"charm.land/bubbles/v2/help"
	"charm.land/huh/v2"
	"charm.land/lipgloss/v2"
)

// One palette for the pages and the settings form, picked for the terminal's
// background (light or dark; dark until the terminal says otherwise). The dim
// grey is 245/242, not ANSI 8, which is the background of dark Solarized.
// NO_COLOR and ASCII terminals are handled by lipgloss's colour profile when
// the view is rendered.
type palette struct {
	fg, dim, accent, ok, fail, warn, border color.Color
}

func newPalette(dark bool) palette {
	ld := lipgloss.LightDark(dark)
	return palette{
		fg:     ld(lipgloss.Color("235"), lipgloss.Color("252")),
		dim:    ld(lipgloss.Color("242"), lipgloss.Color("245")),
		accent: ld(lipgloss.Color("25"), lipgloss.Color("74")),
		ok:     ld(lipgloss.Color("28"), lipgloss.Color("78")),
		fail:   ld(lipgloss.Color("160"), lipgloss.Color("203")),
		warn:   ld(lipgloss.Color("130"), lipgloss.Color("214")),
		border: ld(lipgloss.Color("250"), lipgloss.Color("240")),
	}
}

// Styles of the pages, from the palette (setTheme).
var (
	titleStyle, dimStyle, okStyle, failStyle, warnStyle, selectStyle, boxStyle, helpStyle lipgloss.Style
	helpStyles                                                                            help.Styles
	isDark                                                                                = true
)

func init() { setTheme(true) }

// setTheme sets the pages' styles for a dark or a light background.
func setTheme(dark bool) {
	p := newPalette(dark)
	isDark = dark
	titleStyle = lipgloss.NewStyle().Bold(true)
	dimStyle = lipgloss.NewStyle().Foreground(p.dim)
	okStyle = lipgloss.NewStyle().Foreground(p.ok)
	failStyle = lipgloss.NewStyle().Foreground(p.fail)
	warnStyle = lipgloss.NewStyle().Foreground(p.warn)
	selectStyle = lipgloss.NewStyle().Bold(true).Foreground(p.accent)
	boxStyle = lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(p.border).Padding(0, 1)
	helpStyle = dimStyle
	helpStyles = helpStylesOf(p)
}

func helpStylesOf(p palette) help.Styles {
	h := help.New().Styles
	key, desc := lipgloss.NewStyle().Foreground(p.fg), lipgloss.NewStyle().Foreground(p.dim)
	h.ShortKey, h.ShortDesc, h.ShortSeparator = key, desc, desc
	h.FullKey, h.FullDesc, h.FullSeparator, h.Ellipsis = key, desc, desc, desc
	return h
}

// formTheme is the palette as huh's theme, so the settings form looks like the
// pages after it.
var formTheme = huh.ThemeFunc(func(dark bool) *huh.Styles {
	p := newPalette(dark)
	t := huh.ThemeBase(dark)
	t.Focused.Base = t.Focused.Base.BorderForeground(p.border)
	t.Focused.Card = t.Focused.Base
	t.Focused.Title = t.Focused.Title.Foreground(p.accent).Bold(true)
	t.Focused.NoteTitle = t.Focused.NoteTitle.Foreground(p.accent).Bold(true)
	t.Focused.Description = t.Focused.Description.Foreground(p.dim)
	t.Focused.ErrorIndicator = t.Focused.ErrorIndicator.Foreground(p.fail)
	t.Focused.ErrorMessage = t.Focused.ErrorMessage.Foreground(p.fail)
	t.Focused.SelectSelector = t.Focused.SelectSelector.Foreground(p.accent)
	t.Focused.NextIndicator = t.Focused.NextIndicator.Foreground(p.accent)
	t.Focused.PrevIndicator = t.Focused.PrevIndicator.Foreground(p.accent)
	t.Focused.Option = t.Focused.Option.Foreground(p.fg)
	t.Focused.SelectedOption = t.Focused.SelectedOption.Foreground(p.ok)
	t.Focused.UnselectedOption = t.Focused.UnselectedOption.Foreground(p.fg)
	t.Focused.FocusedButton = t.Focused.FocusedButton.Foreground(lipgloss.Color("0")).Background(p.accent)
	t.Focused.Next = t.Focused.FocusedButton
	t.Focused.BlurredButton = t.Focused.BlurredButton.Foreground(p.fg).Background(p.border)
	t.Focused.TextInput.Cursor = t.Focused.TextInput.Cursor.Foreground(p.accent)
	t.Focused.TextInput.Placeholder = t.Focused.TextInput.Placeholder.Foreground(p.dim)
	t.Focused.TextInput.Prompt = t.Focused.TextInput.Prompt.Foreground(p.accent)
	t.Blurred = t.Focused
	t.Blurred.Base = t.Focused.Base.BorderStyle(lipgloss.HiddenBorder())
	t.Blurred.Card = t.Blurred.Base
	t.Blurred.Title = t.Blurred.Title.Foreground(p.fg).Bold(false)
	t.Blurred.NextIndicator = lipgloss.NewStyle()
	t.Blurred.PrevIndicator = lipgloss.NewStyle()
	t.Group.Title = t.Focused.Title
	t.Group.Description = t.Focused.Description
	t.Help = helpStylesOf(p)
	return t
})

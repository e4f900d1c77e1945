// Keyboard and screen-reader focus on participant pages. A script file rather than an hx-on
// attribute: the Content-Security-Policy allows no inline or evaluated script.
//
// After htmx swaps in a step, focus goes to the error summary when the answers were refused
// (so the problems are read out and their links are the next Tab stops), and otherwise to the
// new step's heading, so the new item is announced and Tab starts from its top. A page loaded
// without htmx gets the same from the summary's autofocus attribute.
function studyFocusStep() {
  var target = document.getElementById("error-summary") || document.getElementById("step-heading");
  if (target) {
    target.focus();
  }
}
document.addEventListener("htmx:afterSettle", studyFocusStep);
